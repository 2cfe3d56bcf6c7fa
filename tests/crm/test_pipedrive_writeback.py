"""The outbox against a Pipedrive stand-in: custom fields by name and option labels,
records fetched when a webhook lacks fields, one PATCH per record (API v2 for persons and
deals, v1 for leads), and a write-back field that does not exist dead-lettered."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from qualify import Engine
from service.inbound import flatten_custom_fields
from service.store import NewJob
from tests.crm.conftest import AS_OF, PIPEDRIVE_TOKEN, Rig
from tests.standins import PipedriveStandIn

PipedriveRig = tuple[PipedriveStandIn, str]


def _fields(crm: PipedriveStandIn, entity: str) -> dict[str, str]:
    """Custom fields named like the rule base's, as an ops person would create them."""
    return {
        "budget": crm.add_field(entity, "Budget", "monetary"),
        "contact_role": crm.add_field(entity, "Contact role", "enum",
                                      ["owner", "executive", "staff"]),
        "sentiment": crm.add_field(entity, "Sentiment", "enum",
                                   ["positive", "neutral", "negative"]),
        "needs_product": crm.add_field(entity, "Needs product", "enum", ["Yes", "No"]),
    }


def _rig(make: Callable[..., Rig], url: str, **overrides: Any) -> Rig:
    return make(pipedrive_api_token=PIPEDRIVE_TOKEN, pipedrive_api_url=url, **overrides)


def _written(crm: PipedriveStandIn, entity: str, body: dict[str, Any]) -> dict[str, Any]:
    """A PATCH body's custom fields by field name."""
    names = {f["key"]: f["name"] for f in crm._field_list(entity)}
    custom = body.get("custom_fields", body)
    return {names[k]: v for k, v in custom.items() if k in names}


def _expected(engine: Engine, lead: dict[str, Any]) -> Any:
    return engine.score(lead, as_of=dt.date.fromisoformat(AS_OF))


class TestPerson:
    def test_a_webhook_record_is_read_by_field_names_and_written(
            self, pipedrive: PipedriveRig, rig: Callable[..., Rig], engine: Engine) -> None:
        """Hash keys become names, option ids labels; the verdict is PATCHed into the
        person's 'Qualify ...' custom fields (score as a number)."""
        crm, url = pipedrive
        keys = _fields(crm, "person")
        custom = {keys["budget"]: {"type": "monetary", "value": 25000, "currency": "USD"},
                  keys["contact_role"]: {"type": "enum",
                                         "id": crm.option_id("person", keys["contact_role"],
                                                             "owner")},
                  keys["sentiment"]: {"type": "enum",
                                      "id": crm.option_id("person", keys["sentiment"],
                                                          "positive")},
                  keys["needs_product"]: {"type": "enum",
                                          "id": crm.option_id("person", keys["needs_product"],
                                                              "Yes")}}
        crm.add_person(42, "Ada", **flatten_custom_fields(custom))  # the API's shapes
        record = {"data": {"id": 42, "name": "Ada",
                           "custom_fields": flatten_custom_fields(custom)},
                  "meta": {"entity": "person"}}
        r = _rig(rig, url)
        r.store.enqueue([NewJob("pipedrive", "person", "42", record, AS_OF, "pipedrive")])
        r.outbox.run_once()
        (job,) = r.jobs()
        assert job["state"] == "delivered", job["last_error"]
        verdict = _expected(engine, {"lead_id": "42", "budget": 25000, "contact_role": "owner",
                                     "sentiment": "positive", "needs_product": "Yes"})
        (write,) = crm.writes
        written = _written(crm, "person", write["body"])
        assert written["Qualify score"] == verdict.score
        assert (written["Qualify grade"], written["Qualify status"]) == (verdict.grade,
                                                                         verdict.status)
        assert written["Qualify next step"] == verdict.next_step["label"]
        assert write["body"].keys() == {"custom_fields"}

    def test_a_record_lacking_fields_is_fetched(
            self, pipedrive: PipedriveRig, rig: Callable[..., Rig], engine: Engine) -> None:
        """A webhook whose data lacks the profile's fields: the person is read from API v2
        (GET /api/v2/persons/{id}) and scored on what Pipedrive holds."""
        crm, url = pipedrive
        keys = _fields(crm, "person")
        crm.add_person(43, "Grace", **{
            keys["budget"]: {"value": 90000, "currency": "USD"},
            keys["contact_role"]: crm.option_id("person", keys["contact_role"], "executive")})
        r = _rig(rig, url)
        thin = {"data": {"id": 43}, "meta": {"entity": "person"}}
        r.store.enqueue([NewJob("pipedrive", "person", "43", thin, AS_OF, "pipedrive")])
        r.outbox.run_once()
        assert ("GET", "/api/v2/persons/43", 200) in crm.requests
        verdict = _expected(engine, {"lead_id": "43", "budget": 90000,
                                     "contact_role": "executive"})
        (write,) = crm.writes
        assert _written(crm, "person", write["body"])["Qualify score"] == verdict.score

    def test_unchanged_values_are_not_written_again(
            self, pipedrive: PipedriveRig, rig: Callable[..., Rig]) -> None:
        """The same record twice: one PATCH."""
        crm, url = pipedrive
        _fields(crm, "person")
        crm.add_person(44, "Lin")
        r = _rig(rig, url)
        record = {"data": {"id": 44, "custom_fields": {}}, "meta": {"entity": "person"}}
        for _ in range(2):
            r.store.enqueue([NewJob("pipedrive", "person", "44", record, AS_OF, "pipedrive")])
            r.outbox.run_once()
        assert len(crm.writes) == 1
        assert [j["state"] for j in r.jobs()] == ["delivered", "skipped"]

    def test_a_missing_write_back_field_is_dead_with_advice(
            self, pipedrive: PipedriveRig, rig: Callable[..., Rig]) -> None:
        """A deal without the 'Qualify ...' fields: nothing written, the job dead, the error
        says which field to create."""
        crm, url = pipedrive
        crm.deal_fields = [f for f in crm.deal_fields if not f["name"].startswith("Qualify")]
        crm.add_deal(7, "Rollout")
        r = _rig(rig, url)
        record = {"data": {"id": 7, "custom_fields": {}}, "meta": {"entity": "deal"}}
        r.store.enqueue([NewJob("pipedrive", "deal", "7", record, AS_OF, "pipedrive")])
        r.outbox.run_once()
        (job,) = r.jobs()
        assert job["state"] == "dead"
        assert "no deal field 'Qualify score'" in job["last_error"]
        assert crm.writes == []


class TestLead:
    def test_a_lead_is_written_with_top_level_keys(
            self, pipedrive: PipedriveRig, rig: Callable[..., Rig]) -> None:
        """Leads take deal custom fields at the top level of a v1 PATCH."""
        crm, url = pipedrive
        _fields(crm, "deal")
        lead_id = crm.add_lead("Acme rollout")
        r = _rig(rig, url)
        record = {"data": {"id": lead_id, "custom_fields": {}}, "meta": {"entity": "lead"}}
        r.store.enqueue([NewJob("pipedrive", "lead", lead_id, record, AS_OF, "pipedrive")])
        r.outbox.run_once()
        (job,) = r.jobs()
        assert job["state"] == "delivered", job["last_error"]
        (write,) = crm.writes
        assert write["entity"] == "lead"
        assert "custom_fields" not in write["body"]
        assert "Qualify grade" in _written(crm, "deal", write["body"])


def test_a_429_waits_without_spending_an_attempt(pipedrive: PipedriveRig,
                                                 rig: Callable[..., Rig]) -> None:
    """Pipedrive's rate limit: queued again, the attempt given back."""
    crm, url = pipedrive
    crm.add_person(45, "Kim")
    r = _rig(rig, url)
    record = {"data": {"id": 45, "custom_fields": {}}, "meta": {"entity": "person"}}
    r.store.enqueue([NewJob("pipedrive", "person", "45", record, AS_OF, "pipedrive")])
    crm.fail_next(429, times=3, retry_after=5)
    r.outbox.run_once()
    (job,) = r.jobs()
    assert (job["state"], job["attempts"]) == ("queued", 0)
