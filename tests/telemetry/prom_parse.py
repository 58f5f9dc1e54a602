"""Parses a Prometheus text exposition (stdin) with the reference client's
parser (`prometheus-client` 0.26.0 from PyPI, in the repository's
.venv-tools) and prints its families as JSON: a page the parser refuses
fails with its error on stderr and exit status 1."""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families


def main():
    text = sys.stdin.read()
    try:
        families = [
            {
                "name": f.name,
                "type": f.type,
                "help": f.documentation,
                "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples],
            }
            for f in text_string_to_metric_families(text)
        ]
    except Exception as e:
        print(f"not a valid exposition: {e!r}", file=sys.stderr)
        sys.exit(1)
    json.dump(families, sys.stdout)


if __name__ == "__main__":
    main()
