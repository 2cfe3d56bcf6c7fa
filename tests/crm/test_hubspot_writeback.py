"""The outbox against a HubSpot stand-in: thin events fetched, scored, written back in
batches of at most 100; unchanged values not written; 429, 5xx, timeouts and refused values
handled as HubSpot documents them."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import pytest

from qualify import Engine, default_rules_path, load_profile
from service.store import NewJob
from tests.crm.conftest import AS_OF, HUBSPOT_TOKEN, Rig
from tests.standins import HubSpotStandIn

READ = "/crm/v3/objects/contacts/batch/read"
UPDATE = "/crm/v3/objects/contacts/batch/update"
CONTACT = {"budget": "25000", "jobtitle": "Founder & CEO", "needs_product": "true",
           "sentiment": "positive", "lifecyclestage": "salesqualifiedlead",
           "firstname": "Ada"}

HubSpotRig = tuple[HubSpotStandIn, str]


def _rig(make: Callable[..., Rig], url: str, **overrides: Any) -> Rig:
    return make(hubspot_token=HUBSPOT_TOKEN, hubspot_api_url=url, **overrides)


def _thin(object_id: str) -> NewJob:
    return NewJob("hubspot", "contacts", object_id, None, AS_OF, "hubspot")


def _expected(engine: Engine, object_id: str, properties: dict[str, str]) -> dict[str, str]:
    """What should be written, from the engine and the profile directly."""
    profile = load_profile(default_rules_path().parent / "mappings" / "hubspot.yaml",
                           engine.rulebook)
    record = {"id": object_id, "properties": {**properties, "hs_object_id": object_id}}
    verdict = engine.score(profile.apply(record), as_of=dt.date.fromisoformat(AS_OF))
    rb = verdict.rulebook
    return {"qualify_score": str(verdict.score), "qualify_grade": verdict.grade,
            "qualify_status": verdict.status, "qualify_next_step": verdict.next_step["label"],
            "qualify_reason": verdict.next_step["reason"],
            "qualify_rulebook": f"{rb['name']} v{rb['version']} {rb['sha256'][:12]}"}


class TestDelivery:
    def test_a_thin_event_is_fetched_scored_and_written(
            self, hubspot: HubSpotRig, rig: Callable[..., Rig], engine: Engine) -> None:
        """The record is read with batch/read, scored as of the event's date, and the
        verdict's properties written with batch/update; the job ends delivered."""
        crm, url = hubspot
        crm.add("contacts", "501", **CONTACT)
        r = _rig(rig, url)
        r.store.enqueue([_thin("501")])
        assert r.outbox.run_once() == 1
        (write,) = crm.writes
        expected = _expected(engine, "501", CONTACT)
        written = write["properties"]
        assert expected == {k: v for k, v in written.items() if k != "qualify_scored_at"}
        assert expected["qualify_grade"] == crm.objects["contacts"]["501"]["qualify_grade"]
        stamp = dt.datetime.fromisoformat(written["qualify_scored_at"])
        assert abs(stamp.timestamp() - time.time()) < 60
        (job,) = r.jobs()
        assert (job["state"], job["attempts"], job["last_error"]) == ("delivered", 1, None)

    def test_unchanged_values_are_not_written_again(
            self, hubspot: HubSpotRig, rig: Callable[..., Rig]) -> None:
        """A second event for the same, unchanged contact reads it, finds our values there,
        and writes nothing: our own write's change event ends the round."""
        crm, url = hubspot
        crm.add("contacts", "502", **CONTACT)
        r = _rig(rig, url)
        r.store.enqueue([_thin("502")])
        r.outbox.run_once()
        r.store.enqueue([_thin("502")])
        r.outbox.run_once()
        assert len(crm.writes) == 1
        second = r.jobs()[-1]
        assert (second["state"], second["outcome"]["unchanged"]) == ("skipped", True)

    def test_a_changed_contact_is_written_again(
            self, hubspot: HubSpotRig, rig: Callable[..., Rig]) -> None:
        """A contact whose data changed gets a new verdict written."""
        crm, url = hubspot
        crm.add("contacts", "503", **CONTACT)
        r = _rig(rig, url)
        r.store.enqueue([_thin("503")])
        r.outbox.run_once()
        crm.objects["contacts"]["503"]["sentiment"] = "negative"
        r.store.enqueue([_thin("503")])
        r.outbox.run_once()
        assert len(crm.writes) == 2
        assert crm.writes[0]["properties"]["qualify_score"] != \
            crm.writes[1]["properties"]["qualify_score"]

    def test_250_events_take_three_reads_and_three_writes(
            self, hubspot: HubSpotRig, rig: Callable[..., Rig]) -> None:
        """Jobs are batched to HubSpot's limit of 100 inputs a call."""
        crm, url = hubspot
        for i in range(250):
            crm.add("contacts", str(1000 + i), **{**CONTACT, "budget": str(1000 * i)})
        r = _rig(rig, url)
        r.store.enqueue([_thin(str(1000 + i)) for i in range(250)])
        while r.outbox.run_once():
            pass
        calls = [(m, p) for m, p, _ in crm.requests]
        assert (calls.count(("POST", READ)), calls.count(("POST", UPDATE))) == (3, 3)
        assert len(crm.writes) == 250
        assert {j["state"] for j in r.jobs(limit=1000)} == {"delivered"}

    def test_a_deleted_contact_is_skipped(self, hubspot: HubSpotRig,
                                          rig: Callable[..., Rig]) -> None:
        """batch/read's 207 names the missing id: that job is skipped, the rest written."""
        crm, url = hubspot
        crm.add("contacts", "601", **CONTACT)
        r = _rig(rig, url)
        r.store.enqueue([_thin("601"), _thin("999")])
        r.outbox.run_once()
        states = {j["object_id"]: (j["state"], j["last_error"]) for j in r.jobs()}
        assert states["601"] == ("delivered", None)
        assert states["999"][0] == "skipped"
        assert "has no contacts 999" in states["999"][1]

    def test_a_record_the_rule_base_cannot_read_is_invalid(
            self, hubspot: HubSpotRig, rig: Callable[..., Rig]) -> None:
        """A value that does not convert is a data error: kept as invalid, not retried."""
        crm, url = hubspot
        crm.add("contacts", "602", **{**CONTACT, "budget": "lots"})
        r = _rig(rig, url)
        r.store.enqueue([_thin("602")])
        r.outbox.run_once()
        (job,) = r.jobs()
        assert job["state"] == "invalid"
        assert job["last_error"].startswith("budget: expected a number")
        assert crm.writes == []


class TestFaults:
    def test_a_429_waits_its_retry_after_without_spending_an_attempt(
            self, hubspot: HubSpotRig, rig: Callable[..., Rig]) -> None:
        """HubSpot's rate limit: the job waits Retry-After seconds, its attempt given back."""
        crm, url = hubspot
        crm.add("contacts", "701", **CONTACT)
        r = _rig(rig, url)
        r.store.enqueue([_thin("701")])
        crm.fail_next(429, retry_after=7)
        before = time.time()
        r.outbox.run_once()
        (job,) = r.jobs()
        assert (job["state"], job["attempts"]) == ("queued", 0)
        assert before + 6 <= job["not_before"] <= time.time() + 7
        assert "429" in job["last_error"]

    def test_a_429_without_retry_after_waits_the_interval(
            self, hubspot: HubSpotRig, rig: Callable[..., Rig]) -> None:
        """Without Retry-After, the rate-limit interval header (10 s) is the wait."""
        crm, url = hubspot
        crm.add("contacts", "702", **CONTACT)
        r = _rig(rig, url)
        r.store.enqueue([_thin("702")])
        crm.fail_next(429)
        before = time.time()
        r.outbox.run_once()
        (job,) = r.jobs()
        assert job["not_before"] >= before + 9

    def test_5xx_backs_off_then_delivers(self, hubspot: HubSpotRig,
                                         rig: Callable[..., Rig]) -> None:
        """A 503 queues the job again after the backoff; the next round delivers it once."""
        crm, url = hubspot
        crm.add("contacts", "703", **CONTACT)
        r = _rig(rig, url, outbox_backoff=30.0)
        r.store.enqueue([_thin("703")])
        crm.fail_next(503)
        before = time.time()
        r.outbox.run_once()
        (job,) = r.jobs()
        assert (job["state"], job["attempts"]) == ("queued", 1)
        assert before + 15 <= job["not_before"] <= before + 31  # 30 s, jitter: half to all
        assert r.outbox.run_once(now=job["not_before"] + 1) == 1
        assert len(crm.writes) == 1
        assert r.jobs()[0]["state"] == "delivered"

    def test_a_timeout_is_retried(self, hubspot: HubSpotRig, rig: Callable[..., Rig]) -> None:
        """HubSpot answering slower than crm_timeout: the job is queued again."""
        crm, url = hubspot
        crm.add("contacts", "704", **CONTACT)
        r = _rig(rig, url, crm_timeout=0.3)
        r.store.enqueue([_thin("704")])
        crm.fail_next(200, delay=1.0)
        r.outbox.run_once()
        (job,) = r.jobs()
        assert job["state"] == "queued"
        assert "in time" in job["last_error"]

    def test_dead_after_the_last_attempt_with_the_error_kept(
            self, hubspot: HubSpotRig, rig: Callable[..., Rig]) -> None:
        """After outbox_max_attempts failures the job is dead with HubSpot's error; an
        admin retry queues it again and it is delivered."""
        crm, url = hubspot
        crm.add("contacts", "705", **CONTACT)
        r = _rig(rig, url, outbox_max_attempts=3)
        r.store.enqueue([_thin("705")])
        crm.fail_next(502, times=3)
        now = time.time()
        for _ in range(3):
            r.outbox.run_once(now=now)
            now += 3600
        (job,) = r.jobs()
        assert (job["state"], job["attempts"]) == ("dead", 3)
        assert "502" in job["last_error"]
        assert r.store.requeue(None, ["dead"]) == [job["id"]]
        r.outbox.run_once()
        assert r.jobs()[0]["state"] == "delivered"

    def test_a_wrong_token_is_retried_then_dead(self, hubspot: HubSpotRig,
                                                rig: Callable[..., Rig]) -> None:
        """401 may be a token being rotated: retried, and dead once attempts run out."""
        crm, url = hubspot
        crm.add("contacts", "706", **CONTACT)
        r = rig(hubspot_token="not-the-token", hubspot_api_url=url, outbox_max_attempts=2)
        r.store.enqueue([_thin("706")])
        r.outbox.run_once()
        assert r.jobs()[0]["state"] == "queued"
        r.outbox.run_once(now=time.time() + 3600)
        (job,) = r.jobs()
        assert job["state"] == "dead"
        assert "INVALID_AUTHENTICATION" in job["last_error"] or "401" in job["last_error"]

    def test_a_refused_value_fails_only_its_record(
            self, hubspot: HubSpotRig, rig: Callable[..., Rig], engine: Engine) -> None:
        """HubSpot refuses a whole batch for one bad value (400): the records are written
        one by one, and only the bad one is dead, with HubSpot's message."""
        crm, url = hubspot
        weak = {**CONTACT, "sentiment": "negative", "budget": "0", "needs_product": "false"}
        good_grade = _expected(engine, "801", CONTACT)["qualify_grade"]
        assert _expected(engine, "802", weak)["qualify_grade"] != good_grade
        crm.define("contacts", "qualify_grade", options=[good_grade])  # 802's is no option
        crm.add("contacts", "801", **CONTACT)
        crm.add("contacts", "802", **weak)
        r = _rig(rig, url)
        r.store.enqueue([_thin("801"), _thin("802")])
        r.outbox.run_once()
        states = {j["object_id"]: j for j in r.jobs()}
        assert states["801"]["state"] == "delivered"
        assert states["802"]["state"] == "dead"
        assert "qualify_grade" in states["802"]["last_error"]
        assert [w["id"] for w in crm.writes] == ["801"]


@pytest.mark.parametrize("n", [1, 5])
def test_jobs_for_one_contact_coalesce(hubspot: HubSpotRig, rig: Callable[..., Rig],
                                       n: int) -> None:
    """Several events for one contact while a job is queued: one job, one read, one write."""
    crm, url = hubspot
    crm.add("contacts", "901", **CONTACT)
    r = _rig(rig, url)
    r.store.enqueue([_thin("901") for _ in range(n)])
    assert len(r.jobs()) == 1
    r.outbox.run_once()
    assert len(crm.writes) == 1
