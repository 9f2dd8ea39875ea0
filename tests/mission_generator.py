"""Random missions for the reference property test, driven by one seed.

Stations in the country at every level (region, district, city) and abroad (country, post);
observers alone and in teams of two sharing their stations (all or some of them);
checklists of every phase, through the single route and in batches, with consistent and
inconsistent protocols, incidents, resends, corrections of corrections (and a correction of
a stale version, refused), analyst reviews made and reversed, quarantine and its lifting,
corrections held after a rejection or quarantine and the decisions that lift the hold, and
a second version of the template. Every event goes through the API as a phone or an analyst
would send it, and is mirrored in a `findings_reference.Mission`.
"""

from __future__ import annotations

import copy
import random
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy.orm import Session

from api.services import templates
from models import Role
from tests import findings_reference as ref
from tests.factories import answers_for, auth, make_mission, make_observer, make_station, make_token
from tests.findings_factories import GOOD_COUNT

PLACES: list[tuple[tuple[str, ...], bool, dict[str, Any]]] = [
    (("North", "Lake"), False, {"region": "North", "district": "Lake"}),
    (("North", "Port"), False, {"region": "North", "district": None, "city": "Port"}),
    (("North",), False, {"region": "North", "district": None}),
    (("South", "Hill"), False, {"region": "South", "district": "Hill"}),
    (("South",), False, {"region": "South", "district": None}),
    (("Turkey", "Ankara"), True, {"country": "Turkey", "post": "Ankara"}),
    (("Turkey",), True, {"country": "Turkey"}),
    (("Georgia",), True, {"country": "Georgia"}),
]
OFFSETS_MIN = (300, 180, 0, -240)  # phones in Astana, Ankara, on UTC, abroad west
INCIDENT_TYPES = list(ref.QUESTIONS["G1"].options)


class Generator:
    """One random mission, built and then changed one event at a time."""

    def __init__(self, seed: int, client: Any, session: Session) -> None:
        self.rng = random.Random(seed)
        self.client, self.session = client, session
        self.now = datetime.now(UTC)
        # Mostly percentages (a threshold of 1), where the rounding of every share shows.
        small = self.rng.choice([1, 1, 1, 5, 30])
        # Fewer cases than the default 5 may be judged, so that short runs see clusters.
        min_cases = self.rng.choice([2, 3, 5])
        settings = {"small_denominator": small, "cluster_min_cases": min_cases}
        mission, _ = make_mission(session, settings={"findings": settings})
        self.mission_id = mission.id
        self.ref = ref.Mission(small=small, cluster_min_cases=min_cases)
        self.payloads: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, str] = {}
        self.events: list[str] = []
        v2 = templates.default_definition().model_copy(update={"version": 2})
        templates.create(session, mission.id, v2, publish=True)
        session.commit()
        codes = []
        for i, (place, abroad, row) in enumerate(PLACES):
            for j in range(self.rng.randint(1, 2)):
                code = f"{place[0][:2].upper()}-{i}{j}"
                # Every station on the map but the first (`placeless`).
                at = {"latitude": 40.0 + len(codes), "longitude": 70.5} if codes else {}
                make_station(session, mission.id, code, **row, **at)
                self.ref.stations[code] = ref.Station(code, place, abroad, **at)
                codes.append(code)
        self.rng.shuffle(codes)
        codes.pop()  # a station no one covers
        for t, team in enumerate(["Team A", "Team B", None, None]):
            mine = [codes.pop() for _ in range(min(len(codes), self.rng.randint(1, 3)))]
            members = 2 if team else 1
            for k in range(members):
                code = f"O{t}{k}"
                # A team's second member may cover only some of its stations: the team's
                # station is covered by whichever member reports there.
                theirs = mine if k == 0 else mine[: self.rng.randint(1, len(mine))]
                obs, token = make_observer(session, mission.id, theirs, code=code, team=team)
                self.ref.observers[code] = ref.Observer(code, obs.name, team, list(theirs))
                self.tokens[code] = token
        self.analyst = make_token(session, mission.id, Role.analyst)

    # --- the filters a dashboard may use ---------------------------------------------------

    def filters(self) -> list[ref.Filters]:
        places = sorted(
            {
                "/".join(s.place[:k])
                for s in self.ref.stations.values()
                for k in (1, 2)
                if len(s.place) >= k
            }
        )
        teams = sorted({o.team for o in self.ref.observers.values() if o.team})
        cut_from, cut_to = self.now - timedelta(hours=5), self.now - timedelta(hours=2)
        out = [ref.Filters(), ref.Filters(abroad=True), ref.Filters(abroad=False)]
        out += [ref.Filters(location=p) for p in places]
        out += [ref.Filters(phase=p) for p in ref.PHASES]
        out += [ref.Filters(team=t) for t in teams]
        out += [
            ref.Filters(observed_from=cut_from),
            ref.Filters(observed_to=cut_to),
            ref.Filters(observed_from=cut_from, observed_to=cut_to),
            ref.Filters(template="default"),
            ref.Filters(template="default", template_version=2),
            ref.Filters(template_version=1),
            ref.Filters(abroad=True, phase="voting"),
            ref.Filters(abroad=False, phase="closing"),
            ref.Filters(location="North", phase="closing", team="Team A"),
            # A region with a phase, and with its own side of the border: from its tallies.
            ref.Filters(location="North", phase="voting"),
            ref.Filters(location="Turkey", abroad=True),
            ref.Filters(location="Turkey", abroad=False),  # contradictory: nothing
        ]
        return out

    # --- events ------------------------------------------------------------------------------

    def step(self) -> None:
        chains = self.ref.chains()
        kinds = ["post"] * 3 + ["batch"] * 3
        if chains:
            kinds += ["resend", "correct", "correct", "review", "review", "quarantine", "stale"]
        getattr(self, f"_{self.rng.choice(kinds)}")()

    def _answers(self, phase: str) -> dict[str, Any]:
        rng, pick = self.rng, self.rng.choice
        over: dict[str, Any]
        if phase == "opening":
            over = {
                "A1": pick(["within_30min"] * 3 + ["later", "did_not_open"]),
                "A2": pick(["yes", "yes", "no"]),
                "A3": pick(["no", "no", "yes"]),
                "A4": rng.sample(["voter_list", "ballots", "ink", "stamps"], rng.randint(1, 2)),
                "B1": pick(["yes", "yes", "no"]),
                "H1": pick(ref.SCALE4),
            }
        elif phase == "voting":
            over = {
                "B1": pick(["yes", "yes", "yes", "no"]),
                "B3": pick(["no", "no", "yes"]),
                "B4": pick(["yes", "no"]),
                "B5": pick([None, ["media"], ["media", "party_agents"]]),
                "C3": pick(["yes", "no"]),
                "C4": rng.randint(0, 12),
                "C6": pick(["yes", "no", "no"]),
                "C8": pick(["yes", "no", "na"]),
                "D4": pick(["yes", "yes", "no"]),
                "D8": pick(["no", "no", "yes"]),
                "D9": pick(ref.SCALE4),
                "E1": pick(["none", "none", "observed", "reported"]),
                "E1N": rng.randint(1, 4),
                "E5": pick(["none", "observed"]),
                "E5N": rng.randint(1, 3),
                "H2": pick(ref.SCALE4),
                "H3": pick(["yes", "no", "na"]),
            }
        elif phase == "closing":
            figures = dict(GOOD_COUNT)
            if rng.random() < 0.4:  # an inconsistent protocol
                key = pick(sorted(figures))
                figures[key] = max(0, figures[key] + pick([-20, -1, 1, 300]))
            figures["P_R"] += rng.choice([0, 0, 0, 7])  # another station's size, consistent
            over = {
                "F11": pick(["yes", "yes", "yes", "no"]),
                "F2": pick(["no", "no", "yes"]),
                "B1": pick(["yes", "yes", "no"]),
                "E1": pick(["none", "none", "observed"]),
                "E1N": 1,
                "H4": pick(ref.SCALE4),
                **figures,
            }
        else:
            over = {
                "G1": pick(INCIDENT_TYPES),
                "G2": pick(["observed", "reported"]),
                "G3": pick([None, "10:30", "16:05"]),
                "G4": "a crowd outside",
            }
        return answers_for(phase, over)

    def _new(
        self, replaces: ref.Version | None = None, observer: ref.Observer | None = None
    ) -> tuple[dict[str, Any], ref.Version]:
        rng = self.rng
        if replaces is None:
            observer = observer or rng.choice(
                [o for o in self.ref.observers.values() if o.stations]
            )
            station = rng.choice(observer.stations)
            phase = rng.choice(
                ["opening", "voting", "voting", "voting", "closing", "closing", "incident"]
            )
            tv = rng.choice([1, 1, 2])
        else:
            observer = self.ref.observers[replaces.observer]
            station, phase, tv = replaces.station, replaces.phase, replaces.template_version
        offset = rng.choice(OFFSETS_MIN)
        # Seconds too: the time filters' windows widen to whole minutes.
        ago = timedelta(minutes=rng.randint(10, 9 * 60), seconds=rng.randint(0, 59))
        observed = (self.now - ago).astimezone(timezone(timedelta(minutes=offset)))
        vid = str(uuid.uuid4())
        payload: dict[str, Any] = {
            "id": vid,
            "station": station,
            "template": "default",
            "template_version": tv,
            "phase": phase,
            "observed_at": observed.isoformat(),
            "answers": self._answers(phase),
        }
        if replaces is not None:
            payload["replaces"] = replaces.id
        version = ref.Version(
            id=vid,
            chain=replaces.chain if replaces else vid,
            version=replaces.version + 1 if replaces else 1,
            observer=observer.code,
            station=station,
            phase=phase,
            template_version=tv,
            observed_at=observed,
            answers=copy.deepcopy(payload["answers"]),
            quarantined=replaces.quarantined if replaces else False,
            held=ref.held_when_corrected(replaces) if replaces else False,
        )
        return payload, version

    def _stored(self, payload: dict[str, Any], version: ref.Version, received_at: str) -> None:
        version.received_at = datetime.fromisoformat(received_at.replace("Z", "+00:00"))
        if version.received_at.tzinfo is None:
            version.received_at = version.received_at.replace(tzinfo=UTC)
        self.payloads[version.id] = payload
        self.ref.versions[version.id] = version

    def _post(self, replaces: ref.Version | None = None) -> None:
        payload, version = self._new(replaces)
        r = self.client.post(
            "/checklists", json=payload, headers=auth(self.tokens[version.observer])
        )
        assert r.status_code == 201, r.text
        self._stored(payload, version, r.json()["received_at"])
        self.events.append(f"post {version.phase} {version.station} v{version.version}")

    def _batch(self) -> None:
        """A phone's queue: new checklists of one observer, sent together twice."""
        observer = self.rng.choice([o for o in self.ref.observers.values() if o.stations])
        items = [self._new(observer=observer) for _ in range(self.rng.randint(2, 10))]
        body = {"items": [p | {"sent_at": datetime.now(UTC).isoformat()} for p, _ in items]}
        token = self.tokens[observer.code]
        for attempt in range(2):  # the answer got lost: the whole queue again
            r = self.client.post("/sync/checklists", json=body, headers=auth(token))
            assert r.status_code == 200, r.text
            results = r.json()["results"]
            want = "created" if attempt == 0 else "duplicate"
            assert [x["status"] for x in results] == [want] * len(items), results
        for (payload, version), result in zip(items, r.json()["results"], strict=True):
            self._stored(payload, version, result["received_at"])
        self.events.append(f"batch of {len(items)}")

    def _latest(self) -> ref.Version:
        chain = self.rng.choice(sorted(self.ref.chains().values(), key=lambda c: c[0].id))
        return chain[-1]

    def _resend(self) -> None:
        vid = self.rng.choice(sorted(self.payloads))
        token = self.tokens[self.ref.versions[vid].observer]
        r = self.client.post("/checklists", json=self.payloads[vid], headers=auth(token))
        assert r.status_code == 200, r.text
        self.events.append("resend")

    def _correct(self) -> None:
        self._post(replaces=self._latest())

    def _stale(self) -> None:
        """A correction of a version already corrected is refused and changes nothing."""
        old = [v for v in self.ref.versions.values() if v.version < len(self.ref.chains()[v.chain])]
        if not old:
            return self._correct()
        payload, version = self._new(replaces=self.rng.choice(sorted(old, key=lambda v: v.id)))
        r = self.client.post(
            "/checklists", json=payload, headers=auth(self.tokens[version.observer])
        )
        assert r.status_code == 409, r.text
        self.events.append("stale correction refused")

    def _review(self, quarantine: bool = False) -> None:
        v = self._latest()
        body: dict[str, Any] = {"comment": "checked by phone call"}
        if quarantine:
            body["quarantined"] = not v.quarantined
        else:
            body["state"] = self.rng.choice(
                ["verified", "verified", "has_issues", "rejected", "received"]
            )
        r = self.client.post(f"/checklists/{v.id}/review", json=body, headers=auth(self.analyst))
        assert r.status_code == 201, r.text
        v.review_state = body.get("state", v.review_state)
        v.quarantined = body.get("quarantined", v.quarantined)
        v.held = False  # any decision is the analyst's look at a held correction
        self.events.append(f"review {body}")

    def _quarantine(self) -> None:
        self._review(quarantine=True)
