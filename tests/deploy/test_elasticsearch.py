"""deploy/elasticsearch: the index template an operator can PUT by hand is the one
``index bootstrap`` puts, and the local Elasticsearch-protocol server accepts it
(template, an index created from it with the write alias, the strict mapping enforced)."""

from __future__ import annotations

import json
import secrets

import pytest
from elasticsearch import BadRequestError

from shared.core.clients import get_elasticsearch
from shared.core.settings import Settings
from shared.index.template import template_body
from tests.deploy.tools import DEPLOY

TEMPLATE_FILE = DEPLOY / "elasticsearch" / "gmail-emails-template.json"


def test_template_file_is_what_bootstrap_puts() -> None:
    assert json.loads(TEMPLATE_FILE.read_text()) == template_body(Settings()), (
        "regenerate deploy/elasticsearch/gmail-emails-template.json from template_body()"
    )


@pytest.mark.timeout(60)
def test_local_server_accepts_the_template_and_enforces_its_mapping(settings) -> None:
    es = get_elasticsearch(settings)
    body = json.loads(TEMPLATE_FILE.read_text())
    suffix = secrets.token_hex(4)
    name, alias = f"deploy-check-{suffix}", f"deploy_check_{suffix}"
    body["index_patterns"] = [f"{alias}-*"]  # the file's own pattern belongs to the session
    es.indices.put_index_template(name=name, **body)
    try:
        es.indices.create(index=f"{alias}-000001", aliases={alias: {"is_write_index": True}})
        mapping = es.indices.get_mapping(index=f"{alias}-000001")[f"{alias}-000001"]["mappings"]
        assert mapping["dynamic"] == "strict"
        assert mapping["properties"]["owner_id"]["type"] == "keyword"
        document = {"owner_id": "u1", "subject": "Invoice 42"}
        es.index(index=alias, id="d1", document=document, refresh=True)
        assert es.count(index=alias)["count"] == 1
        with pytest.raises(BadRequestError):
            es.index(index=alias, id="d2", document={"owner_id": "u1", "not_in_mapping": 1})
    finally:
        es.indices.delete(index=f"{alias}-000001", ignore_unavailable=True)
        es.indices.delete_index_template(name=name)
