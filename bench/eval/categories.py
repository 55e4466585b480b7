"""``python -m bench.eval.categories``: the category part of ``make eval`` alone.

Why apart: measuring the category rules needs only an import, not the web, the
worker and ~150 questions, so a rule change is measured in seconds. Imports the
same demo mailbox as ``make eval`` into fresh Redis and noida-db servers and
prints ``category_scores`` (precision/recall of the stored ``category`` against
the generator's kinds) plus how the stored categories are distributed.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from datetime import UTC, datetime

from bench.eval.__main__ import COUNT, DAYS, EMAIL, PASSWORD, category_scores
from bench.eval.facts import mailbox_facts
from bench.stack import local_servers
from devtools.demo_mailbox import DEFAULT_SEED, write_mbox
from shared.core.clients import get_elasticsearch, get_redis
from shared.identity.users import create_user
from shared.index.writer import import_mbox


def main() -> int:
    with local_servers("mailchat-eval-categories:") as (settings, workdir):
        today = datetime.now(UTC).date()
        user = create_user(get_redis(settings), settings, EMAIL, PASSWORD)
        mbox = workdir / "demo.mbox"
        write_mbox(mbox, owner_address=EMAIL, today=today, count=COUNT, days=DAYS)
        es = get_elasticsearch(settings)
        import_mbox(es, settings, user.id, mbox, refresh=True, owner_addresses=[EMAIL])
        facts = mailbox_facts(user.id, EMAIL, today, COUNT, DAYS, DEFAULT_SEED)
        scores = category_scores(settings, facts)
        found = es.search(
            index=settings.index_alias,
            size=0,
            aggs={"c": {"terms": {"field": "category", "size": 20}}},
        )["aggregations"]["c"]["buckets"]
    for name, value in scores.items():
        if isinstance(value, dict):
            print(f"category {name}: precision {value['precision']} recall {value['recall']}")
    print(f"stored: {json.dumps({b['key']: b['doc_count'] for b in found})}")
    print(f"kinds: {json.dumps(Counter(f.kind for f in facts))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
