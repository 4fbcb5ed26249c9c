"""What jsonl-sink wrote, as the benchmarks read it (lag_bench.sh,
isolation_bench.sh): the acknowledged ids the delivery driver listed, and
each id's first handling in the sink's lines."""
import json


def acked_ids(path):
    """The ids of the driver's acknowledged deliveries (tab-separated lines)."""
    return {l.split("\t")[1] for l in open(path) if l.count("\t") >= 2}


def first_handlings(path, only=None):
    """id -> (handled_at_ms, received_at_ms) of its first line in the sink's
    file, and how many lines were read (of `only`'s ids, when given)."""
    first, lines = {}, 0
    try:
        with open(path, errors="replace") as f:
            for line in f:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if only is not None and ev["id"] not in only:
                    continue
                lines += 1
                h, r = ev["handled_at_ms"], ev["received_at_ms"]
                if ev["id"] not in first or h < first[ev["id"]][0]:
                    first[ev["id"]] = (h, r)
    except FileNotFoundError:
        pass
    return first, lines
