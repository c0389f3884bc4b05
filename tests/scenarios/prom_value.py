#!/usr/bin/env python3
"""prom_value.py FILE METRIC [LABEL=REGEX]...: parses FILE with the Prometheus
client library's text-format parser (a malformed exposition is an error) and
prints the sum of METRIC's samples whose labels all match (re.search); 0 when
none does."""
import re
import sys

from prometheus_client.parser import text_string_to_metric_families


def main():
    path, metric, filters = sys.argv[1], sys.argv[2], sys.argv[3:]
    wanted = [f.split("=", 1) for f in filters]
    with open(path, encoding="utf-8") as f:
        text = f.read()
    total = 0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name != metric:
                continue
            if all(re.search(rx, s.labels.get(label, "")) for label, rx in wanted):
                total += s.value
    print(int(total))


if __name__ == "__main__":
    main()
