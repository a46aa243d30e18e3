#!/usr/bin/env python3
"""Parses Prometheus text format from the file named by the argument with prometheus_client's own parser and prints
one line per sample: name{label="value",...} value (labels sorted). Exits non-zero if the
text does not parse."""
import sys

from prometheus_client.parser import text_string_to_metric_families

for family in text_string_to_metric_families(open(sys.argv[1]).read()):
    for sample in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
        print(f"{sample.name}{{{labels}}} {sample.value:g}")
