"""Read one sample out of a Prometheus text exposition, as a scraper would."""

from typing import Text

from prometheus_client.parser import text_string_to_metric_families


def sample(exposition: Text, name: Text, **labels: Text) -> float:
    """The value of sample `name` whose labels include `labels`; 0.0 when there is none."""
    for family in text_string_to_metric_families(exposition):
        for found in family.samples:
            if found.name == name and all(found.labels.get(key) == value for key, value in labels.items()):
                return found.value
    return 0.0


def label_values(exposition: Text, name: Text, label: Text) -> set:
    """Every value label `label` takes on sample `name`."""
    return {
        found.labels[label]
        for family in text_string_to_metric_families(exposition)
        for found in family.samples
        if found.name == name and label in found.labels
    }
