# -*- coding: utf-8 -*-
# Copyright (c) gentle.lb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The batch planning of the gentle.lb.rolling_deploy role, as filters.

The role drains and restores a whole batch (a round of it) at once: the hosts
bound to the same balancer go into one call of gentle.lb.member, so the core's
capacity guard counts them together.  These filters turn the hosts' bindings
into those calls, read the calls' results back per host (by ``error_type``,
never by message text), split a round the guard refused into the fewest rounds
its numbers allow, and summarise a host's round for its timings.

    calls = hosts | gentle.lb.rolling_deploy_calls(hostvars, 'drained', types)
    outcome = [register1, register2] | gentle.lb.rolling_deploy_outcome('drained')
    split = [register1] | gentle.lb.rolling_deploy_split(hosts, hostvars, round)

``types`` is the role's table of binding types (vars/main.yml): per type the
keys that name the member (one value per host, a list in the call) and the
keys the role accepts.  Every host of the batch publishes
``_rolling_deploy_me`` = {bindings, settings} as a fact first, so that any host
can plan for the others (play vars and role defaults are not in hostvars).

Controller-side only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import datetime
import html
import json
import math
import re

from ansible.errors import AnsibleFilterError

REFUSED = "GuardRefusedError"
TIMEOUT = "WaitTimeoutError"
USABLE = ("up", "unknown")
COMMON_KEYS = ("type", "delegate_to", "label", "wait_timeout", "poll_interval", "drain_threshold",
               "on_timeout", "reassert", "min_active")
ROLE_KEYS = ("type", "delegate_to", "label")
UTC = datetime.timezone.utc


# --------------------------------------------------------------------------
# Checking the bindings
# --------------------------------------------------------------------------

def rolling_deploy_problems(bindings, types):
    """What is wrong with one host's bindings: a list of sentences, empty when
    all is well (checked before anything is done, so a typo such as "bakend"
    cannot widen a drain to every backend)."""
    if not isinstance(bindings, list):
        return ["rolling_deploy_bindings must be a list of mappings, one per load balancer the host is bound to"]
    if not bindings:
        return ["rolling_deploy_bindings is empty: list the load balancers this host is bound to"]
    problems = []
    for binding in bindings:
        if not isinstance(binding, dict):
            problems.append("every entry of rolling_deploy_bindings must be a mapping")
            continue
        kind = binding.get("type")
        spec = types.get(kind)
        if spec is None:
            problems.append("binding type %s is not one of %s" % (kind or "(none)", ", ".join(sorted(types))))
            continue
        accepted = set(COMMON_KEYS) | set(spec["members"]) | set(spec["options"])
        for key in binding:
            if key not in accepted:
                problems.append("%s binding: unknown key %s%s" % (kind, key, " (the role sets it)"
                                                                  if key in ("state", "wait") else ""))
        for nested, keys in spec.get("nested", {}).items():
            for key in binding.get(nested) or {}:
                if key not in keys:
                    problems.append("%s binding: unknown key %s.%s%s" % (
                        kind, nested, key, " (the view is read from where the file is: give %s a socket "
                        "reachable there, a tcp:// socket or stats_url)" % nested if key == "delegate_to" else ""))
        if not any(_get(binding, key) is not None for key in spec["required"]):
            problems.append("%s binding: needs %s" % (kind, " or ".join(spec["required"])))
        if spec.get("delegate_required") and not binding.get("delegate_to"):
            problems.append("%s binding: needs delegate_to (%s)" % (kind, spec["delegate_required"]))
    return problems


# --------------------------------------------------------------------------
# Planning the calls
# --------------------------------------------------------------------------

def _get(binding, dotted):
    value = binding
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _without(binding, dotted_keys):
    shared = copy.deepcopy(binding)
    for dotted in dotted_keys:
        parts = dotted.split(".")
        holder = shared
        for part in parts[:-1]:
            holder = holder.get(part) if isinstance(holder, dict) else None
        if isinstance(holder, dict):
            holder.pop(parts[-1], None)
    return shared


def _put(options, dotted, value):
    parts = dotted.split(".")
    holder = options
    for part in parts[:-1]:
        holder = holder.setdefault(part, {})
    holder[parts[-1]] = value


def _me(hostvars, host):
    try:
        return hostvars[host]["_rolling_deploy_me"]
    except KeyError:
        raise AnsibleFilterError("rolling_deploy: %s has not published its bindings (_rolling_deploy_me); "
                                 "run the role's preflight on every host of the batch first" % host)


def _options_for(binding, settings, state, spec):
    """The module options one binding asks for, without the member keys."""
    options = _without(binding, list(spec["members"]) + list(ROLE_KEYS))
    options["state"] = state
    if state == "drained":
        options.pop("weight", None)
        options.setdefault("wait_timeout", settings["drain_timeout"])
        options.setdefault("drain_threshold", settings["drain_threshold"])
        options.setdefault("on_timeout", settings["drain_on_timeout"])
        options.setdefault("min_active", settings["min_active"])
    else:
        for name in spec.get("drain_only", ()):
            options.pop(name, None)
        options.setdefault("wait_timeout", settings["restore_timeout"])
        options["on_timeout"] = "fail"
    return options


def _delegates(binding, host, spec):
    delegate = binding.get("delegate_to")
    if delegate is None:
        delegate = host if spec.get("delegate_default") == "node" else "localhost"
    return delegate if isinstance(delegate, list) else [delegate]


def rolling_deploy_calls(hosts, hostvars, state, types, wait=None, round_number=1):
    """One gentle.lb.member call per balancer for ``hosts`` (in their order).

    A balancer is a binding type, a delegate host and every option that is not
    a member's own (connection, backend, timeouts): the hosts that share all
    of them are one call, their members one list.  ``wait``: None waits in the
    call when it is the only one (else the role makes a wait pass after all
    of them were written, so the waits overlap); True or False forces it.
    ``round_number`` is kept in each call, so results of an earlier round
    (registers of tasks skipped since) are never read as this round's."""
    calls = []
    by_key = {}
    for host in hosts:
        me = _me(hostvars, host)
        for number, binding in enumerate(me["bindings"], 1):
            kind = binding["type"]
            spec = types[kind]
            present = [k for k in spec["members"] if _get(binding, k) is not None]
            options = _options_for(binding, me["settings"], state, spec)
            for delegate in _delegates(binding, host, spec):
                key = json.dumps([kind, delegate, present, options], sort_keys=True, default=str)
                call = by_key.get(key)
                if call is None:
                    call = dict(key=key, round=int(round_number), type=kind, delegate_to=delegate,
                                options=copy.deepcopy(options),
                                member_keys=present, members=[], hosts=[], labels=[])
                    by_key[key] = call
                    calls.append(call)
                call["members"].append(dict(host=host, values=[_get(binding, k) for k in present],
                                            binding=number, label=binding.get("label")))
                if host not in call["hosts"]:
                    call["hosts"].append(host)
                if binding.get("label"):
                    call["labels"].append(binding["label"])
    for call in calls:
        for index, key in enumerate(call["member_keys"]):
            _put(call["options"], key, [m["values"][index] for m in call["members"]])
        call["options"]["wait"] = (len(calls) == 1) if wait is None else bool(wait)
        call["label"] = _label(call, types[call["type"]])
    return calls


def _label(call, spec):
    """What the output shows for a call (never a credential)."""
    if call["labels"]:
        names = ", ".join(call["labels"])
    else:
        names = ", ".join(str(v) for m in call["members"] for v in m["values"][:1])
    container = call["options"].get(spec.get("container", ""), None)
    if isinstance(container, list):
        container = ",".join(str(c) for c in container)
    where = " %s" % container if container else ""
    return "%s %s%s: %s via %s" % (call["type"], call["options"]["state"], where, names, call["delegate_to"])


# --------------------------------------------------------------------------
# Reading the results back per host
# --------------------------------------------------------------------------

def _results(registers):
    """The loop results of one or more registered run_once tasks (skipped ones have none)."""
    if isinstance(registers, dict):
        registers = [registers]
    found = []
    for register in registers or []:
        if isinstance(register, dict):
            found.extend(r for r in register.get("results", []) if isinstance(r, dict) and "item" in r)
    return found


def _failure_text(result):
    """What a failed call said.  A module that crashed may leave no ``msg`` (a
    suppressed failure keeps only its traceback or stderr): their last line
    then, so that the failure message names the cause."""
    for key in ("msg", "exception", "module_stderr", "stderr"):
        text = str(result.get(key) or "").strip()
        if text:
            return text if key == "msg" else "%s: %s" % (key, text.splitlines()[-1])
    return "the call failed and returned no message (%s)" % ", ".join(sorted(result))


def _failed(result):
    """Did the call fail?  The tasks' failed_when: false hides ``failed``;
    gentle.lb.member's ``call_failed`` does not."""
    return bool(result.get("call_failed", result.get("failed")) or result.get("unreachable"))


def _matches(value, entry):
    """Does a member value (a name, an address, address:port, a path) name this result entry?"""
    if value is None:
        return False
    value = str(value)
    name, address, port = entry.get("name"), entry.get("address"), entry.get("port")
    if value in (name, address, entry.get("path")):
        return True
    if address is not None and port is not None and value in ("%s:%s" % (address, port), "[%s]:%s" % (address, port)):
        return True
    return name is not None and ":" in str(name) and str(name).rsplit(":", 1)[0].strip("[]") == value


def _entries_of(call, host, entries):
    values = [v for m in call["members"] if m["host"] == host for v in m["values"]]
    return [e for e in entries if any(_matches(v, e) for v in values)]


def _reached(entry, state, threshold):
    if state == "drained":
        return entry.get("state") in ("drained", "absent") and (entry.get("sessions") or 0) <= threshold
    return entry.get("state") == "present" and entry.get("health") in USABLE


def rolling_deploy_outcome(registers, state, round_number=None):
    """{host: outcome} of the ``state`` calls of round ``round_number`` in
    ``registers`` (later ones win; other states, such as the undo calls of a
    split, and other rounds are left out).

    An outcome: ok, refused (the guard: GuardRefusedError), error_type, msg,
    waited (whether the last call waited for the goal), started, ended (the
    controller's clock), wait (seconds waited on the goal)."""
    outcome = {}
    for result in _results(registers):
        call = result["item"]
        if call["options"].get("state") != state:
            continue
        if round_number is not None and call.get("round") != int(round_number):
            continue
        failed = _failed(result)
        error_type = (result.get("error_type") or ("Unreachable" if result.get("unreachable") else None)
                      if failed else None)
        entries = result.get("members") or []
        threshold = int(call["options"].get("drain_threshold") or 0)
        started = float(result.get("started") or 0)
        ended = _ended(result)
        for host in call["hosts"]:
            ok = not failed
            if failed and error_type == TIMEOUT:
                # Only the members still open at the deadline failed; the others reached the goal.
                reached = _entries_of(call, host, entries)
                ok = bool(reached) and all(_reached(e, state, threshold) for e in reached)
            before = outcome.get(host, {})
            mine = _entries_of(call, host, entries)
            outcome[host] = dict(
                health=["%s %s" % (e.get("container"), e.get("health")) for e in mine],
                usable=bool(mine) and all(e.get("state") == "present" and e.get("health") in USABLE for e in mine),
                ok=ok,
                refused=failed and error_type == REFUSED,
                error_type=None if ok else (error_type or "ActionFailed"),
                msg=None if ok else _failure_text(result),
                guard=result.get("guard") if failed else None,
                waited=bool(call["options"].get("wait")),
                started=before.get("started", started),
                ended=ended,
                wait=before.get("wait", 0.0) + float(result.get("waited") or 0),
                changed=before.get("changed", False) or bool(result.get("changed")),
            )
    return outcome


def rolling_deploy_hosts(outcome, status, hosts=None):
    """The hosts of ``outcome`` (in the order of ``hosts``) that are ``status``:
    ok, not_waited (ok, the call did not wait), refused, or failed."""
    tests = dict(
        ok=lambda o: o["ok"],
        not_waited=lambda o: o["ok"] and not o["waited"],
        refused=lambda o: o["refused"],
        failed=lambda o: not o["ok"] and not o["refused"],
    )
    test = tests[status]
    order = hosts if hosts is not None else sorted(outcome)
    return [h for h in order if h in outcome and test(outcome[h])]


# --------------------------------------------------------------------------
# Splitting a refused round
# --------------------------------------------------------------------------

def rolling_deploy_split(registers, hosts, round_number):
    """After the guard refused some calls of a round: which round each host of
    the round's calls goes in (in the order of ``hosts``), from the refusals'
    numbers (``guard``: per container how many members may leave now), filling
    each round in order.

    Returns {rounds: {host: n}, now: [hosts of this round], later: [...],
    stuck: {host: why}, message}.  A host that could not leave even alone
    (``may_leave`` 0) is stuck: the floor leaves it no room."""
    round_number = int(round_number)
    results = [r for r in _results(registers) if r["item"].get("round") == round_number]
    capacity = {}       # (call key, container) -> may_leave
    costs = {}          # host -> {(call key, container): members of it leaving}
    texts = []
    for result in results:
        if not (_failed(result) and result.get("error_type") == REFUSED):
            continue
        call = result["item"]
        for entry in result.get("guard") or []:
            slot = (call["key"], entry["container"])
            capacity[slot] = int(entry["may_leave"])
            for host in call["hosts"]:
                values = [v for m in call["members"] if m["host"] == host for v in m["values"]]
                leaving = [n for n in entry.get("leaving", []) if any(_matches(v, dict(name=n)) for v in values)]
                if leaving:
                    costs.setdefault(host, {})[slot] = len(leaving)
            texts.append("%s %s: %d of %d members in rotation and healthy, %d needed, so %d may leave" % (
                call["type"], entry["container"], entry["active"], entry["members"], entry["needed"],
                entry["may_leave"]))
    # Only the hosts of this round's calls, in the order given (the batch's).
    in_calls = set(h for r in results for h in r["item"]["hosts"])
    hosts = [h for h in hosts if h in in_calls]
    # Hosts of this round the other calls drained: when they are back, there
    # is room again, so a host refused now waits for a later round rather than
    # failing (the balancer counts them out already, as with files moved one
    # after the other).
    out_now = set(h for r in results if not _failed(r) for h in r["item"]["hosts"])
    rounds, stuck, used = {}, {}, {}
    for host in hosts:
        mine = costs.get(host, {})
        too_big = [slot for slot, cost in mine.items() if cost > capacity[slot]]
        if too_big and out_now - set([host]):
            rounds[host] = round_number + 1
            continue
        if too_big:
            stuck[host] = too_big[0][1]
            continue
        number = round_number
        while any(used.get((number, slot), 0) + cost > capacity[slot] for slot, cost in mine.items()):
            number += 1
        for slot, cost in mine.items():
            used[(number, slot)] = used.get((number, slot), 0) + cost
        rounds[host] = number
    now = [h for h in hosts if rounds.get(h) == round_number]
    later = [h for h in hosts if rounds.get(h, round_number) > round_number]
    last = max(rounds.values()) if rounds else round_number
    plan = "; ".join("round %d: %s" % (n, ", ".join(h for h in hosts if rounds.get(h) == n))
                     for n in range(round_number, last + 1) if any(rounds.get(h) == n for h in hosts))
    message = "the capacity floor does not let %d host%s leave at once (%s): %s%s" % (
        len(hosts), "" if len(hosts) == 1 else "s", "; ".join(texts),
        plan or "none can leave now",
        (" (%s: no room even alone)" % ", ".join(sorted(stuck))) if stuck else "")
    return dict(rounds=rounds, now=now, later=later, stuck=stuck, message=message)


# --------------------------------------------------------------------------
# One host's record of its round
# --------------------------------------------------------------------------

def rolling_deploy_record(host, drain, restore, marks, failure, round_number, check_mode=False):
    """The host's result and timings (seconds) after its round.

    ``drain``/``restore``: rolling_deploy_outcome of the drain and restore
    calls; ``marks``: the host's own clock marks ({start, health, end});
    ``failure``: what the host's own steps recorded ({step, msg}) or None."""
    mine_drain = (drain or {}).get(host)
    mine_restore = (restore or {}).get(host)
    record = dict(result="done", step="done", round=int(round_number), msg=None, drain=None, wait=None,
                  deploy=None, health=None, restore=None, total=None,
                  # Could the drain have changed anything? (A refusal writes nothing.)
                  touched=mine_drain is not None and not mine_drain["refused"])
    if mine_drain is not None:
        record["wait"] = round(mine_drain["wait"], 2)
        record["drain"] = round(max(mine_drain["ended"] - mine_drain["started"] - mine_drain["wait"], 0.0), 2)
    health_at = marks.get("health")
    if mine_drain is not None and health_at:
        record["deploy"] = round(max(health_at - mine_drain["ended"], 0.0), 2)
    if mine_restore is not None:
        record["restore"] = round(mine_restore["ended"] - mine_restore["started"], 2)
        if health_at:
            record["health"] = round(max(mine_restore["started"] - health_at, 0.0), 2)
    if marks.get("start") and marks.get("end"):
        record["total"] = round(marks["end"] - marks["start"], 2)
    if failure:
        record.update(result="failed", step=failure["step"], msg=failure["msg"])
        record.update((k, failure[k]) for k in ("error_type", "reason") if failure.get(k))
    elif mine_drain is not None and not mine_drain["ok"]:
        record.update(result="failed", step="drain", msg=mine_drain["msg"], error_type=mine_drain["error_type"])
    elif mine_restore is not None and not mine_restore["ok"]:
        record.update(result="failed", step="restore", msg=mine_restore["msg"], error_type=mine_restore["error_type"])
    if check_mode:
        record["check_mode"] = True
    return record


# --------------------------------------------------------------------------
# Rollout control: failure tolerance, deadlines
# --------------------------------------------------------------------------

DEPLOY_TIMEOUT = "DeployTimeoutError"
ROLLOUT_DEADLINE = "RolloutDeadlineError"
TOO_MANY_FAILED = "TooManyFailedError"
MAX_FAILED_FORMS = "a number of hosts (2) or a percentage of the play's hosts ('10%')"


def rolling_deploy_max_failed(value, hosts):
    """How many failed hosts rolling_deploy_max_failed lets the rollout go on
    past, of ``hosts`` (the play's hosts: a count or a list).  A percentage is
    of the play's hosts, rounded down (10% of 15 hosts tolerates 1): a
    tolerance never tolerates more than it says.  Text (``-e k=v``, an AWX
    survey) is read as YAML would; an empty answer means 0."""
    total = hosts if isinstance(hosts, int) else len(hosts)
    if isinstance(value, bool):
        raise AnsibleFilterError("rolling_deploy_max_failed %r: use %s" % (value, MAX_FAILED_FORMS))
    text = "" if value is None else str(value).strip()
    if not text:
        return 0
    percent = text.endswith("%")
    try:
        number = int(text[:-1].strip() if percent else text)
    except ValueError:
        raise AnsibleFilterError("rolling_deploy_max_failed %r: use %s" % (value, MAX_FAILED_FORMS))
    if number < 0 or (percent and number > 100):
        raise AnsibleFilterError("rolling_deploy_max_failed %r: out of range (0 or more hosts, 0%%-100%%)" % (value,))
    return total * number // 100 if percent else number


def _hostvar(hostvars, host, name, default=None):
    try:
        return hostvars[host][name]
    except KeyError:
        return default


def rolling_deploy_stop(hosts_all, hostvars, hosts_left, max_failed=0, deadline=0, now=None):
    """Whether the rollout has stopped, and why, before a host is drained.

    ``hosts_all``/``hosts_left``: ansible_play_hosts_all/ansible_play_hosts.
    A host failed when Ansible took it out of the play (unreachable, failed
    outside the role) or when its round recorded ``_rolling_deploy_result``
    failed (a failure rolling_deploy_max_failed tolerated stays counted).
    The rollout stops when more hosts failed than rolling_deploy_max_failed
    allows, or when rolling_deploy_deadline seconds have passed since the
    first batch started (the earliest ``_rolling_deploy_marks.start``).

    Returns {stopped, reason (failed|deadline|None), error_type, failed
    [hosts], allowed, elapsed, msg}."""
    left = set(hosts_left or [])
    failed = [h for h in hosts_all if h not in left or _hostvar(hostvars, h, "_rolling_deploy_result") == "failed"]
    allowed = rolling_deploy_max_failed(max_failed, len(hosts_all))
    starts = []
    for host in hosts_all:
        marks = _hostvar(hostvars, host, "_rolling_deploy_marks") or {}
        if marks.get("start") not in (None, ""):
            starts.append(float(marks["start"]))
    elapsed = round(float(now) - min(starts), 1) if starts and now is not None else 0.0
    deadline = int(deadline or 0)
    result = dict(stopped=False, reason=None, error_type=None, failed=failed, allowed=allowed,
                  elapsed=elapsed, msg=None)
    if len(failed) > allowed:
        beyond = ""
        if str(max_failed).strip() not in ("", "0"):
            beyond = ", more than rolling_deploy_max_failed=%s allows (%d)" % (max_failed, allowed)
        result.update(stopped=True, reason="failed", error_type=TOO_MANY_FAILED,
                      msg="the rollout stopped because %s failed earlier in this run%s" % (", ".join(failed), beyond))
    elif deadline and elapsed > deadline:
        result.update(stopped=True, reason="deadline", error_type=ROLLOUT_DEADLINE,
                      msg="the rollout stopped because rolling_deploy_deadline=%d s has passed: it has run %.1f s "
                          "since its first batch started" % (deadline, elapsed))
    return result


def rolling_deploy_time_left(timeout, started, now):
    """The ``timeout`` keyword for the next task of the deploy step: the
    seconds left of rolling_deploy_deploy_timeout since ``started`` (at least
    1, so a late task is cut at once rather than never), or 0 (none) when
    there is no timeout."""
    timeout = int(timeout or 0)
    if not timeout:
        return 0
    left = timeout - (float(now) - float(started or now))
    return max(1, int(left) + (0 if left == int(left) else 1))


def rolling_deploy_timed(failure, failed_result, elapsed, timeout):
    """The failure the rescue of the deploy step records, told apart by
    structure, never by message text: a task Ansible cut at its ``timeout``
    (its result has ``timedout``) or a step that ran past
    rolling_deploy_deploy_timeout is a DeployTimeoutError (reason deadline)."""
    timeout = int(timeout or 0)
    if not timeout or not failure or failure.get("step") != "deploy":
        return failure
    cut = isinstance(failed_result, dict) and bool(failed_result.get("timedout"))
    elapsed = float(elapsed or 0)
    if not cut and elapsed < timeout:
        return failure
    what = "a deploy task was cut at its time limit" if cut else "the deploy step ran past it"
    return dict(failure, error_type=DEPLOY_TIMEOUT, reason="deadline",
                msg="rolling_deploy_deploy_timeout=%d s: %s after %.1f s (%s)" % (
                    timeout, what, elapsed, failure.get("msg") or "failed"))


# --------------------------------------------------------------------------
# The timeline: every phase of a host, with the clock marks it was made of
# --------------------------------------------------------------------------

def _iso(stamp):
    """ISO 8601 UTC, to the millisecond, of an epoch time."""
    millis = int(round(float(stamp) * 1000))
    moment = datetime.datetime.fromtimestamp(millis // 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (millis % 1000)


def _ended(result):
    """The controller's clock after the call: gentle.lb.member's ``ended``
    (older results: ``started`` + ``elapsed``, both measured around the call)."""
    if result.get("ended") is not None:
        return float(result["ended"])
    return float(result.get("started") or 0) + float(result.get("elapsed") or 0)


def _pause_stamp(text):
    """ansible.builtin.pause's ``start``/``stop``: the controller's local time, str(datetime.now())."""
    for form in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.datetime.strptime(str(text), form).timestamp()     # naive: local time
        except ValueError:
            continue
    return None


def _entry(phase, started, ended, **fields):
    started, ended = round(started, 3), round(ended, 3)
    entry = dict(phase=phase, started=started, ended=ended, started_iso=_iso(started), ended_iso=_iso(ended),
                 seconds=round(max(ended - started, 0.0), 3), result="ok", step=None, error_type=None, msg=None)
    entry.update(fields)
    return entry


def _binding_entries(results, host, state, round_number):
    """One entry per binding of ``host`` (per director, for a list of
    delegates) in the ``state`` calls of the round: what its own calls did,
    from their results (a binding drained again after a split keeps its first
    start and its last answer)."""
    bindings = {}
    order = []
    for result in results:
        call = result["item"]
        if call["options"].get("state") != state or call.get("round") != int(round_number):
            continue
        if result.get("skipped") or result.get("started") is None:
            continue        # a loop item of a skipped task: no call was made
        failed = _failed(result)
        error_type = (result.get("error_type") or ("Unreachable" if result.get("unreachable") else "ActionFailed")
                      if failed else None)
        threshold = int(call["options"].get("drain_threshold") or 0)
        for member in call["members"]:
            if member["host"] != host:
                continue
            mine = [e for e in result.get("members") or [] if any(_matches(v, e) for v in member["values"])]
            ok = not failed or (error_type == TIMEOUT and bool(mine) and all(_reached(e, state, threshold) for e in mine))
            key = (member.get("binding"), call["delegate_to"])
            before = bindings.get(key)
            if before is None:
                order.append(key)
            containers = sorted(set(str(e["container"]) for e in mine if e.get("container") is not None))
            started = float(result.get("started") or 0)
            ended = _ended(result)
            name = ", ".join(str(v) for v in member["values"][:1])
            bindings[key] = dict(
                binding=member.get("binding"),
                label=member.get("label") or "%s %s%s via %s" % (
                    call["type"], name, (" in " + ",".join(containers)) if containers else "", call["delegate_to"]),
                type=call["type"], container=containers, delegate_to=call["delegate_to"],
                wait=bool(call["options"].get("wait")) or bool(before and before["wait"]),
                result="ok" if ok else "failed", error_type=None if ok else error_type,
                msg=None if ok else _failure_text(result),
                changed=bool(before and before["changed"]) or bool(result.get("changed")),
                waited=round((before["waited"] if before else 0.0) + float(result.get("waited") or 0), 3),
                started=before["started"] if before else round(started, 3),
                ended=round(ended, 3), calls=(before["calls"] if before else 0) + 1)
    found = []
    for key in order:
        entry = bindings[key]
        entry.update(started_iso=_iso(entry["started"]), ended_iso=_iso(entry["ended"]))
        found.append(entry)
    return found


def _call_phase(phase, registers, host, state, round_number, extra=None):
    """The phase made of the ``state`` calls of the round that list ``host``, or None."""
    bindings = _binding_entries(_results(registers), host, state, round_number)
    if not bindings:
        return None
    failed = [b for b in bindings if b["result"] != "ok"]
    entry = _entry(phase, min(b["started"] for b in bindings), max(b["ended"] for b in bindings),
                   result="failed" if failed else "ok",
                   error_type=failed[0]["error_type"] if failed else None,
                   msg=failed[0]["msg"] if failed else None,
                   waited=round(max(b["waited"] for b in bindings), 3), bindings=bindings)
    entry.update(extra or {})
    return entry


def rolling_deploy_timeline(record, host, calls, marks, failure, batch, check_mode=False):
    """The host's round as a list of phases, in the order they happened.

    ``record``: the host's rolling_deploy_record; ``calls``: the round's
    registers by phase ({drain, wait, restore, restore_wait, soak}: the
    gentle.lb.member loops, ansible.builtin.pause's result); ``marks``: the
    host's own clock marks ({start, health, end}, now().timestamp() in the
    role); ``failure``: what its own steps recorded ({step, msg, at}) or None;
    ``batch``: the play batch the host was in (1-based).

    Every timestamp is a clock mark: the calls' started/ended (the
    controller's clock around each call), the role's marks, pause's
    start/stop.  A phase whose marks are not there is left out."""
    round_number = int(record.get("round") or 1)
    failure = failure or {}
    failed_at = failure.get("at")
    failed_at = float(failed_at) if failed_at not in (None, "") else float(marks.get("end") or 0)
    phases = []

    def fail_last(entry, step=None):
        entry.update(result="failed", step=step or failure.get("step"), msg=failure.get("msg"),
                     error_type=failure.get("error_type") or entry.get("error_type"))

    drain = _call_phase("drain", calls.get("drain"), host, "drained", round_number)
    wait = _call_phase("wait", calls.get("wait"), host, "drained", round_number)
    if drain is None and failure.get("step") == "before_drain" and marks.get("start"):
        entry = _entry("before_drain", float(marks["start"]), failed_at)
        fail_last(entry)
        phases.append(entry)
    if drain is not None:
        # The call waited itself when it was the only one: its wait is inside it.
        drain["wait_in_call"] = wait is None and any(b["wait"] for b in drain["bindings"])
        phases.append(drain)
    if wait is not None:
        phases.append(wait)
    drained_at = phases[-1]["ended"] if phases and phases[-1]["phase"] in ("drain", "wait") else None
    drain_ok = drained_at is not None and all(p["result"] == "ok" for p in phases)
    if drain_ok and failure.get("step") == "drain" and phases:
        fail_last(phases[-1])
    restore = _call_phase("restore", calls.get("restore"), host, "present", round_number)
    restore_wait = _call_phase("restore_wait", calls.get("restore_wait"), host, "present", round_number)
    health_at = marks.get("health")
    health_at = float(health_at) if health_at else None
    step = failure.get("step")
    if drain_ok:
        if health_at is not None and health_at >= drained_at:
            deploy = _entry("deploy", drained_at, health_at)
            phases.append(deploy)
            health_end = restore["started"] if restore is not None else failed_at
            health = _entry("health", health_at, max(health_end, health_at))
            phases.append(health)
            if step in ("health", "before_restore"):
                fail_last(health)
        elif step in ("after_drain", "deploy", "health", "before_restore"):
            deploy = _entry("deploy", drained_at, max(failed_at, drained_at))
            fail_last(deploy)
            phases.append(deploy)
    for entry in (restore, restore_wait):
        if entry is not None:
            phases.append(entry)
    soak = calls.get("soak") or {}
    if restore is not None and all(p["result"] == "ok" for p in phases) and soak.get("start") and soak.get("stop") \
            and not soak.get("skipped"):
        soak_started, soak_ended = _pause_stamp(soak["start"]), _pause_stamp(soak["stop"])
        if soak_started is not None and soak_ended is not None and soak_started >= phases[-1]["ended"] - 0.001:
            phases.append(_entry("soak", soak_started, soak_ended))
    if step == "after_restore" and phases:
        entry = _entry("after_restore", phases[-1]["ended"], max(failed_at, phases[-1]["ended"]))
        fail_last(entry)
        phases.append(entry)
    if failure and not any(p["result"] == "failed" for p in phases) and phases:
        fail_last(phases[-1])
    for entry in phases:
        entry.update(host=host, batch=int(batch), round=round_number)
        if entry["result"] == "failed" and not entry["step"]:
            entry["step"] = record.get("step") if record.get("result") == "failed" else entry["phase"]
        if check_mode:
            entry["check_mode"] = True
    return phases


def rolling_deploy_timeline_failure(timeline, host, calls, marks, now, rollback_error=None, check_mode=False):
    """The host's timeline with what rolling_deploy_on_failure did after its
    round: ``failure_restore`` (on_failure=restore), ``rollback`` (the rollback
    tasks, from the end of the round to the health check of the rolled back
    version), ``rollback_health``, ``rollback_restore``.  ``calls``:
    {failure_restore, rollback_drain, rollback_restore} registers; ``marks``: the host's
    marks ({rollback}: when the health check of the rolled back version
    started); ``now``: the clock now (where a failed rollback left no mark)."""
    timeline = list(timeline or [])
    last = timeline[-1] if timeline else {}
    fields = dict(host=host, batch=last.get("batch"), round=last.get("round"))
    if check_mode:
        fields["check_mode"] = True
    added = []
    restored = _call_phase("failure_restore", calls.get("failure_restore"), host, "present", 1, fields)
    if restored is not None:
        added.append(restored)
    # A failed host back in rotation is drained before its rollback tasks run.
    drained = _call_phase("rollback_drain", calls.get("rollback_drain"), host, "drained", 1, fields)
    if drained is not None:
        added.append(drained)
    rolled = _call_phase("rollback_restore", calls.get("rollback_restore"), host, "present", 1, fields)
    # The rollback tasks start once the round (and any failure_restore call) is over.
    ends = [p["ended"] for p in timeline + added]
    started = max(ends) if ends else (float(marks.get("end") or 0) or None)
    rollback_at = float(marks["rollback"]) if marks.get("rollback") else None
    if started is not None and (rollback_at is not None or rollback_error):
        ended = rollback_at if rollback_at is not None else float(now)
        entry = _entry("rollback", started, max(ended, started), **fields)
        if rollback_at is None:
            entry.update(result="failed", step="rollback", msg=rollback_error)
        added.append(entry)
        if rollback_at is not None:
            ended = rolled["started"] if rolled is not None else float(now)
            entry = _entry("rollback_health", rollback_at, max(ended, rollback_at), **fields)
            if rollback_error:
                entry.update(result="failed", step="rollback", msg=rollback_error)
            added.append(entry)
    if rolled is not None:
        added.append(rolled)
    for entry in added:
        if entry["result"] == "failed" and not entry["step"]:
            entry["step"] = entry["phase"]
    known = set((p["phase"], p["started"]) for p in timeline)
    return timeline + sorted((p for p in added if (p["phase"], p["started"]) not in known), key=lambda p: p["started"])


def rolling_deploy_batch(batch, play_hosts, hostvars):
    """Which of the play's serial batches ``batch`` is (1-based): one more than
    the last batch the hosts before it in the play recorded (each batch's
    preflight records its number on its hosts)."""
    batch = list(batch or [])
    play_hosts = list(play_hosts or [])
    if not batch or batch[0] not in play_hosts:
        return 1
    earlier = play_hosts[:play_hosts.index(batch[0])]
    numbers = [0]
    for host in earlier:
        try:
            number = hostvars[host]["_rolling_deploy_batch"]
        except (KeyError, TypeError):
            continue
        try:
            numbers.append(int(number))
        except (TypeError, ValueError):
            continue
    return max(numbers) + 1


def rolling_deploy_play_timeline(hosts, hostvars):
    """Every host's timeline in one list, by start time (the set_stats artifact)."""
    entries = []
    for host in hosts:
        try:
            timeline = hostvars[host]["rolling_deploy_timeline"]
        except (KeyError, TypeError):
            continue
        entries.extend(timeline or [])
    return sorted(entries, key=lambda p: (p["started"], p["ended"], p["host"]))


SERIAL_FORMS = ("a number of hosts (2), a percentage ('25%') or steps ([1, '25%', '100%'], "
                "also written 1,25%,100%)")


def _serial_step(step, whole):
    """One batch size: a positive int or 'N%' (1-100), as the play's serial takes it."""
    if isinstance(step, bool):
        raise AnsibleFilterError("rolling_deploy_serial %r: %r is not a batch size; use %s" % (whole, step, SERIAL_FORMS))
    if isinstance(step, int):
        number, percent = step, False
    else:
        text = str(step).strip()
        percent = text.endswith("%")
        try:
            number = int(text[:-1] if percent else text)
        except ValueError:
            raise AnsibleFilterError("rolling_deploy_serial %r: %r is not a batch size; use %s"
                                     % (whole, step, SERIAL_FORMS))
    if number < 1 or (percent and number > 100):
        raise AnsibleFilterError("rolling_deploy_serial %r: %r is out of range (at least 1 host, or 1%%-100%%); "
                                 "every host at once is what a rolling deploy avoids" % (whole, step))
    return "%d%%" % number if percent else number


def rolling_deploy_serial(value):
    """The play's ``serial`` from whatever form the variable arrived in.

    YAML and a JSON ``-e`` give an int, a string or a list; a plain
    ``-e rolling_deploy_serial=[1,"50%"]`` and an AWX survey text field give
    the same written as a string.  An empty string (an unanswered survey
    field) means one host at a time."""
    steps = value
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return 1
        if text.startswith("["):
            try:
                steps = json.loads(text)
            except ValueError:
                # Single quotes, as people write Python and YAML lists: ['1', '50%']
                try:
                    steps = json.loads(text.replace("'", '"'))
                except ValueError:
                    raise AnsibleFilterError("rolling_deploy_serial %r: not a list; use %s" % (value, SERIAL_FORMS))
        else:
            steps = [part for part in text.replace(",", " ").split() if part]
    if not isinstance(steps, (list, tuple)):
        steps = [steps]
    if not steps:
        raise AnsibleFilterError("rolling_deploy_serial %r: no batch size; use %s" % (value, SERIAL_FORMS))
    parsed = [_serial_step(step, value) for step in steps]
    return parsed[0] if len(parsed) == 1 else parsed


# --------------------------------------------------------------------------
# Approval points: stop after a batch, resume in the next job
# --------------------------------------------------------------------------

APPROVAL_FORMS = "batch numbers: 1, [1, 3], also written 1,3 or '[1, 3]'"


def _from_text(value, what, forms):
    """A list or a dict that arrived as text (a plain -e k=v, an AWX survey
    field): JSON, or single-quoted as people write YAML and Python."""
    text = value.strip()
    for candidate in (text, text.replace("'", '"')):
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    raise AnsibleFilterError("%s %r: not readable; use %s" % (what, value, forms))


def rolling_deploy_approval_points(value):
    """The batch numbers after which the rollout stops for an approval, sorted,
    from whatever form rolling_deploy_approval_after arrived in."""
    numbers = value
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        numbers = _from_text(text, "rolling_deploy_approval_after", APPROVAL_FORMS) if text.startswith("[") else [
            part for part in text.replace(",", " ").split() if part]
    if not isinstance(numbers, (list, tuple)):
        numbers = [numbers]
    points = set()
    for number in numbers:
        if isinstance(number, bool) or not str(number).strip().isdigit() or int(str(number).strip()) < 1:
            raise AnsibleFilterError("rolling_deploy_approval_after %r: %r is not a batch number (1 is the first "
                                     "batch); use %s" % (value, number, APPROVAL_FORMS))
        points.add(int(str(number).strip()))
    return sorted(points)


RESUME_FORM = ('the rolling_deploy_resume artifact the job before the approval point published, '
               '{"after_batch": 1, "done": ["web1"]}')


def rolling_deploy_resume_state(value, hosts_all):
    """rolling_deploy_resume, checked against this play: {after_batch, done}.

    An empty value is a rollout that starts at its first batch.  The resume
    job must roll the same hosts (inventory, limit) as the job that stopped:
    a done host this play does not have means it does not, and guessing where
    to go on would be worse than stopping."""
    if value in (None, "", {}):
        return {"after_batch": 0, "done": []}
    if isinstance(value, str):
        value = _from_text(value, "rolling_deploy_resume", RESUME_FORM)
    if not isinstance(value, dict) or set(value) - {"after_batch", "done"}:
        raise AnsibleFilterError("rolling_deploy_resume %r: use %s" % (value, RESUME_FORM))
    after = value.get("after_batch")
    done = value.get("done") or []
    if isinstance(after, bool) or not str(after).isdigit() or not isinstance(done, (list, tuple)):
        raise AnsibleFilterError("rolling_deploy_resume %r: use %s" % (value, RESUME_FORM))
    unknown = [host for host in done if host not in (hosts_all or [])]
    if unknown:
        raise AnsibleFilterError(
            "rolling_deploy_resume names %s, which this play does not roll: resume with the inventory and limit "
            "of the job that stopped at the approval point" % ", ".join(str(host) for host in unknown))
    return {"after_batch": int(after), "done": [str(host) for host in done]}


# --------------------------------------------------------------------------
# The analysis gate: the balancer's own counters over the soak
# --------------------------------------------------------------------------

ANALYSIS_FAILED = "AnalysisFailedError"
# Threshold -> (its default, whether it may be a fraction).  Every check is off
# until its threshold is set; min_requests and min_errors only qualify them.
ANALYSIS_THRESHOLDS = dict(max_error_rate=None, max_error_ratio=None, max_response_time_ms=None,
                           max_response_time_ratio=None, min_traffic_share=None, min_requests=20, min_errors=1)
# Thresholds that are fractions, 0 to 1, and what they are a fraction of.
ANALYSIS_FRACTIONS = dict(max_error_rate="the node's requests, 0 to 1 (0.05 = 5%%)",
                          min_traffic_share="the node's fair share of its container's new traffic, 0 to 1 "
                                            "(0.5 = at least half what its weight entitles it to)")
# What F5 BIG-IP pool member statistics do not count, so the thresholds that
# need it cannot judge an F5 pool (the verdict says so instead of pretending).
F5_NOT_OFFERED = dict(
    max_error_rate="F5 member statistics count no errors",
    max_error_ratio="F5 member statistics count no errors",
    max_response_time_ms="F5 member statistics have no response time",
    max_response_time_ratio="F5 member statistics have no response time",
)
ANALYSIS_COUNTERS = ("requests", "responses_5xx", "connection_errors", "response_errors", "retries",
                     "redispatches")
NO_COUNTERS = ("the balancer reports no request counters for it (IPVS has none: there the health gate is "
               "the only gate)")


def _analysis_thresholds(thresholds):
    given = dict(thresholds or {})
    unknown = sorted(set(given) - set(ANALYSIS_THRESHOLDS))
    if unknown:
        raise AnsibleFilterError("rolling_deploy_analysis: unknown threshold(s) %s; known: %s"
                                 % (", ".join(unknown), ", ".join(sorted(ANALYSIS_THRESHOLDS))))
    result = dict(ANALYSIS_THRESHOLDS)
    for key, value in given.items():
        if value is None or (isinstance(value, str) and not value.strip()):
            result[key] = ANALYSIS_THRESHOLDS[key]
            continue
        try:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
        except (TypeError, ValueError):
            raise AnsibleFilterError("rolling_deploy_analysis: %s %r is not a number" % (key, value))
        if number < 0 or math.isnan(number):
            raise AnsibleFilterError("rolling_deploy_analysis: %s %r must be 0 or more" % (key, value))
        if key in ANALYSIS_FRACTIONS and number > 1:
            raise AnsibleFilterError(("rolling_deploy_analysis: %s %r is a fraction of " + ANALYSIS_FRACTIONS[key])
                                     % (key, value))
        result[key] = number
    return result


def _members_of(snapshot):
    """The member entries of a *_member_info result (or of its members list)."""
    if isinstance(snapshot, dict):
        snapshot = snapshot.get("members", [])
    return [m for m in (snapshot or []) if isinstance(m, dict)]


def _counters(entry):
    """One entry's cumulative counters, or None without request counters."""
    responses = entry.get("responses")
    if entry.get("requests") is None or not isinstance(responses, dict):
        return None
    values = dict(requests=entry["requests"], responses_5xx=responses.get("5xx", 0))
    for key in ANALYSIS_COUNTERS[2:]:
        values[key] = entry.get(key) or 0
    return values


def _summed(deltas):
    total = dict((key, sum(d[key] for d in deltas)) for key in ANALYSIS_COUNTERS)
    # A refused connection never becomes a request: it is counted beside them.
    total["errors"] = total["responses_5xx"] + total["connection_errors"] + total["response_errors"]
    attempts = total["requests"] + total["connection_errors"]
    total["error_rate"] = round(float(total["errors"]) / attempts, 6) if attempts else None
    times = [(d["weight"], d["response_time_ms"]) for d in deltas if d.get("response_time_ms") is not None]
    weight = sum(w for w, _t in times)
    total["response_time_ms"] = (round(sum(w * t for w, t in times) / float(weight), 1) if weight
                                 else (round(sum(t for _w, t in times) / float(len(times)), 1) if times else None))
    total["servers"] = len(deltas)
    return total


def _share(node_units, node_weight, peers, limits, unit):
    """(facts, reasons) of the traffic share check: the node's part of the new
    traffic its container's members in rotation took over the window, against
    its fair part by weight (``peers``: [(units, weight)] of the others in
    rotation).  A node the balancer sends far less than its weight says - it
    marks it down now and then, it answers too slowly for a least-connections
    mode, a connection limit holds it back - is what it catches; with less
    than ``min_requests`` in the whole container there is nothing to share."""
    total = node_units + sum(units for units, _weight in peers)
    weights = node_weight + sum(weight for _units, weight in peers)
    fair = float(total) * node_weight / weights if weights else 0.0
    share = round(node_units / fair, 4) if fair else None
    facts = dict(traffic_share=share, fair_share=round(fair, 1), container_traffic=total, traffic_unit=unit)
    wanted = limits["min_traffic_share"]
    if wanted is None or share is None or total < limits["min_requests"] or share >= wanted:
        return facts, []
    return facts, ["took %d of the %d new %s its members in rotation took, %.0f%% of its fair share by weight "
                   "(%.1f), below min_traffic_share %g" % (node_units, total, unit, share * 100, fair, wanted)]


def _in_rotation(entry):
    weight = entry.get("weight")
    return (entry.get("state") == "present" and entry.get("health") in USABLE and not entry.get("backup")
            and (weight is None or weight > 0))


def _backend_verdict(node, others, limits, share_reasons=()):
    """(verdict, reasons) of one backend."""
    reasons = []
    attempts = node["requests"] + node["connection_errors"]
    if attempts < limits["min_requests"]:
        if share_reasons:
            return "fail", list(share_reasons)
        return "no_data", ["%d request(s) reached the node, fewer than min_requests (%d)"
                           % (attempts, limits["min_requests"])]
    enough_errors = node["errors"] >= max(limits["min_errors"], 1)
    rate = node["error_rate"] or 0.0
    if limits["max_error_rate"] is not None and enough_errors and rate > limits["max_error_rate"]:
        reasons.append("error rate %.4g (%d of %d) is above max_error_rate %g"
                       % (rate, node["errors"], attempts, limits["max_error_rate"]))
    others_attempts = others["requests"] + others["connection_errors"]
    others_rate = others["error_rate"] or 0.0
    compared = others["servers"] and others_attempts >= limits["min_requests"]
    if limits["max_error_ratio"] is not None and enough_errors and compared \
            and rate > limits["max_error_ratio"] * others_rate:
        reasons.append("error rate %.4g is above max_error_ratio %g times the others' %.4g"
                       % (rate, limits["max_error_ratio"], others_rate))
    rtime = node["response_time_ms"]
    if limits["max_response_time_ms"] is not None and rtime is not None and rtime > limits["max_response_time_ms"]:
        reasons.append("response time %g ms is above max_response_time_ms %g" % (rtime, limits["max_response_time_ms"]))
    if limits["max_response_time_ratio"] is not None and rtime is not None and compared \
            and others["response_time_ms"] is not None \
            and rtime > limits["max_response_time_ratio"] * max(others["response_time_ms"], 1):
        reasons.append("response time %g ms is above max_response_time_ratio %g times the others' %g ms"
                       % (rtime, limits["max_response_time_ratio"], others["response_time_ms"]))
    reasons.extend(share_reasons)
    return ("fail" if reasons else "pass"), reasons


class AnalysisMemberMissing(AnsibleFilterError):
    """The node is not in the reading (no server name given, or none of its
    names in any backend read): the gate has no traffic of it to judge, which
    rolling_deploy_analysis_verdict turns into no_data by this type."""


def _f5_counters(entry):
    """An F5 member's cumulative counters, or None when its stats were not read."""
    if entry.get("total_connections") is None:
        return None
    return dict(connections=entry["total_connections"], requests=entry.get("total_requests") or 0)


def _f5_not_offered(limits):
    return ["%s: not offered by F5 (%s)" % (key, why) for key, why in sorted(F5_NOT_OFFERED.items())
            if limits[key] is not None]


def _f5_pool_verdict(node, others, ends, limits):
    """(verdict, reasons, node facts) of one F5 pool: ``node`` and ``others``
    the members' deltas over the window, ``ends`` the node's entries in the
    last reading.  Requests are the traffic when the pool counted any (a
    virtual server with an HTTP profile), else new connections."""
    unit = "requests" if any(d["requests"] for d in node + others) else "connections"
    units = sum(d[unit] for d in node)
    group = ends[0].get("priority_group")
    # Only the peers that can take traffic when the node does: in rotation,
    # and in its priority group (the others get none while it is available).
    peers = [(d[unit], d["lb_weight"]) for d in others if d["in_rotation"] and d["priority_group"] == group]
    facts, reasons = _share(units, sum(d["lb_weight"] for d in node) or 1, peers, limits, unit)
    facts.update(connections=sum(d["connections"] for d in node), requests=sum(d["requests"] for d in node),
                 availability=ends[0].get("availability"), servers=len(node))
    not_offered = _f5_not_offered(limits)
    if limits["min_traffic_share"] is None:
        if not_offered:
            return "no_data", not_offered + ["set min_traffic_share to judge F5 pools by the node's share of "
                                             "their traffic"], facts
        if units < limits["min_requests"]:
            return "no_data", ["%d %s reached the node, fewer than min_requests (%d)"
                               % (units, unit, limits["min_requests"])], facts
        return "pass", [], facts
    down = [e for e in ends if e.get("admin_state") == "enabled" and e.get("availability") == "offline"]
    if down:
        reasons.insert(0, "the device marks it offline at the end of the window (%s)"
                       % (down[0].get("status_reason") or "no reason given"))
    if not reasons and facts["container_traffic"] < limits["min_requests"]:
        return "no_data", ["%d %s reached the pool's members in rotation, fewer than min_requests (%d)"
                           % (facts["container_traffic"], unit, limits["min_requests"])], facts
    return ("fail" if reasons else "pass"), reasons, facts


def _f5_analysis(after, before, names, limits):
    """rolling_deploy_analysis for F5 pools (``balancer='f5'``)."""
    first = dict(((m.get("container"), m.get("name")), m) for m in _members_of(before))
    grouped = {}
    for entry in _members_of(after):
        pool, name = entry.get("container"), entry.get("name")
        group = grouped.setdefault(pool, dict(node=[], others=[], ends=[], missing=[]))
        side = "node" if name in names else "others"
        if side == "node":
            group["ends"].append(entry)
        now, then = _f5_counters(entry), _f5_counters(first.get((pool, name), {}))
        if now is None or then is None:
            group["missing"].append((side, name, now is None))
            continue
        delta = dict((key, now[key] - then[key]) for key in now)
        if any(value < 0 for value in delta.values()):
            group["missing"].append((side, name, "restarted"))
            continue
        delta.update(lb_weight=entry.get("weight") if entry.get("weight") is not None else 1,
                     in_rotation=_in_rotation(entry), priority_group=entry.get("priority_group"))
        group[side].append(delta)
    pools = {}
    for pool in sorted(grouped, key=str):
        group = grouped[pool]
        if not group["ends"]:
            continue                    # the node is not in this pool
        lacking = [(name, why) for side, name, why in group["missing"] if side == "node"]
        others = dict(connections=sum(d["connections"] for d in group["others"]),
                      requests=sum(d["requests"] for d in group["others"]), servers=len(group["others"]))
        if lacking:
            named, why = ", ".join(name for name, _why in lacking), lacking[0][1]
            if why == "restarted":
                text = "the statistics of %s restarted during the window (a reset, a reboot or a failover)" % named
            elif why is True:
                text = "%s: the device's statistics were not read" % named
            else:
                text = "%s was not in the first reading" % named
            verdict, texts, facts = "no_data", [text], None
        else:
            verdict, texts, facts = _f5_pool_verdict(group["node"], group["others"], group["ends"], limits)
        pools[pool] = dict(verdict=verdict, reasons=texts, node=facts, others=others,
                           not_offered=_f5_not_offered(limits))
    if not pools:
        raise AnalysisMemberMissing("rolling_deploy_analysis: %s in no pool of the reading" % ", ".join(names))
    verdicts = [b["verdict"] for b in pools.values()]
    verdict = "fail" if "fail" in verdicts else "pass" if "pass" in verdicts else "no_data"
    reasons = ["%s: %s" % (pool, text) for pool, b in pools.items() for text in b["reasons"]]
    judged = [b["node"] for b in pools.values() if b["verdict"] == verdict and b["node"]]
    return dict(verdict=verdict, reasons=reasons, node=judged[0] if judged else None,
                others=dict(connections=sum(b["others"]["connections"] for b in pools.values()),
                            requests=sum(b["others"]["requests"] for b in pools.values())),
                backends=pools, not_offered=_f5_not_offered(limits))


def rolling_deploy_analysis(after, before, servers, thresholds=None, balancer="haproxy"):
    """The analysis gate's verdict on one node over a window (the soak).

    ``after`` and ``before`` are two readings of the balancer - results of
    gentle.lb.haproxy_member_info (or their ``members``) - taken at the end
    and at the start of the window; ``servers`` names the node's server(s).
    In every backend the node is in, its counters' growth over the window is
    compared with that of the backend's other servers together:

    * errors = 5xx responses + connection errors + response errors, and the
      error rate = errors / (requests + connection errors);
    * ``max_error_rate``: the node's rate may not exceed it (a fraction);
    * ``max_error_ratio``: nor that many times the others' rate (the others
      need ``min_requests`` too, else this check is skipped);
    * ``max_response_time_ms`` and ``max_response_time_ratio``: the same for
      the node's average response time (HAProxy's ``rtime``, its last 1024
      requests) against the others' (weighted by their requests);
    * with fewer than ``min_requests`` (default 20) over the window the
      verdict is ``no_data``; an error check fails only with at least
      ``min_errors`` (default 1) errors.

    Every check is off until its threshold is set.  The verdict is ``fail`` if
    a backend fails, else ``pass`` if one passes, else ``no_data`` (also for
    a balancer without request counters, such as IPVS, and after a reload,
    which starts the counters again).  Returns {verdict, reasons, node,
    others, backends: {backend: {verdict, reasons, node, others}}}.

    ``min_traffic_share`` (a fraction, off by default) judges the node's part
    of the new traffic its backend's servers in rotation took (not backups,
    not drained) against its fair part by weight: a node that took fewer
    requests than ``min_traffic_share`` times that fails - also with fewer
    than ``min_requests`` of its own, once the backend as a whole had them.

    ``balancer='f5'`` reads gentle.lb.f5_pool_member_info results instead:
    F5 member statistics count connections and requests but no errors and
    no response times, so per pool only ``min_traffic_share`` judges (on
    requests when the pool counted any, else on new connections, among the
    members in rotation of the node's priority group), and a node the device
    marks offline at the end of the window fails it too; the error and
    response time thresholds are listed in ``not_offered`` and, set alone,
    give ``no_data`` that says so.
    """
    limits = _analysis_thresholds(thresholds)
    names = [servers] if isinstance(servers, str) else list(servers or [])
    if not names:
        raise AnalysisMemberMissing("rolling_deploy_analysis: no server named")
    if balancer == "f5":
        return _f5_analysis(after, before, names, limits)
    first = dict(((m.get("container", m.get("backend")), m.get("name")), m) for m in _members_of(before))
    grouped = {}
    reasons = []
    for entry in _members_of(after):
        backend, name = entry.get("container", entry.get("backend")), entry.get("name")
        grouped.setdefault(backend, dict(node=[], others=[], missing=[]))
        side = "node" if name in names else "others"
        now, then = _counters(entry), _counters(first.get((backend, name), {}))
        if now is None or then is None:
            grouped[backend]["missing"].append((side, name, now is None))
            continue
        delta = dict((key, now[key] - then[key]) for key in ANALYSIS_COUNTERS)
        if any(value < 0 for value in delta.values()):
            grouped[backend]["missing"].append((side, name, "restarted"))
            continue
        delta["response_time_ms"] = entry.get("response_time_ms")
        delta["weight"] = delta["requests"]
        delta["lb_weight"] = entry.get("weight") if entry.get("weight") is not None else 1
        delta["in_rotation"] = _in_rotation(entry)
        grouped[backend][side].append(delta)
    backends = {}
    node_deltas, other_deltas = [], []
    for backend in sorted(grouped, key=str):
        group = grouped[backend]
        lacking = [(name, why) for side, name, why in group["missing"] if side == "node"]
        if not group["node"] and not lacking:
            continue                    # the node is not in this backend
        node, others = _summed(group["node"]), _summed(group["others"])
        node_deltas.extend(group["node"])
        other_deltas.extend(group["others"])
        if lacking:
            named = ", ".join(name for name, _why in lacking)
            why = lacking[0][1]
            if why == "restarted":
                text = "the counters of %s restarted during the window (a reload or a restart)" % named
            elif why is True:
                text = "%s: %s" % (named, NO_COUNTERS)
            else:
                text = "%s was not in the first reading" % named
            verdict, texts = "no_data", [text]
        else:
            peers = [(d["requests"], d["lb_weight"]) for d in group["others"] if d["in_rotation"]]
            facts, share_reasons = _share(node["requests"], sum(d["lb_weight"] for d in group["node"]) or 1,
                                          peers, limits, "requests")
            node.update(facts)
            verdict, texts = _backend_verdict(node, others, limits, share_reasons)
        backends[backend] = dict(verdict=verdict, reasons=texts, node=node, others=others)
        reasons.extend("%s: %s" % (backend, text) for text in texts)
    if not backends:
        raise AnalysisMemberMissing("rolling_deploy_analysis: %s in no backend of the reading" % ", ".join(names))
    verdicts = [b["verdict"] for b in backends.values()]
    verdict = "fail" if "fail" in verdicts else "pass" if "pass" in verdicts else "no_data"
    node, others = _summed(node_deltas), _summed(other_deltas)
    return dict(verdict=verdict, reasons=reasons, node=node, others=others, backends=backends)


# The connection options of a binding that its analysis reads reuse, per
# type, and the option that names its containers.
ANALYSIS_CONNECTION = dict(
    haproxy=("socket", "stats_url", "stats_user", "stats_password", "validate_certs", "timeout"),
    f5=("server", "server_port", "user", "password", "validate_certs", "transport", "timeout", "token_cache",
        "provider", "partition"),
)
ANALYSIS_CONTAINER = dict(haproxy="backend", f5="pool")
# What the analysis gate says about binding types it cannot read.
ANALYSIS_UNCOVERED = dict(
    ipvs="IPVS has no request counters: for ipvs bindings the health gate is the only gate",
    lvs_director="IPVS has no request counters: for lvs_director bindings the health gate is the only gate",
    health_file="the analysis gate does not read health_file bindings yet: for them the health gate is the "
                "only gate",
)


def _member_values(binding, kind):
    """(names, addresses) that name a binding's member in a reading; an F5
    address with a port is ``address:port`` (a node has a member per port)."""
    names = binding.get("name" if kind == "f5" else "server")
    addresses = binding.get("address")
    names = [names] if not isinstance(names, list) else names
    addresses = [addresses] if not isinstance(addresses, list) else addresses
    names, addresses = [n for n in names if n is not None], [a for a in addresses if a is not None]
    if kind != "f5":
        return names, addresses
    # An F5 name may be a node's (web1: its members on every port) and is
    # matched like an address, which knows that form.
    port = binding.get("port")
    if port is not None:
        addresses = ["%s:%s" % (a, port) for a in addresses]
        names = [_f5_member_name(str(n), port) for n in names]
    return [], names + addresses


def _f5_member_name(name, port):
    """An F5 binding's ``name`` with its ``port`` -> the member's name
    (``web1:80``; IPv6 ``2001:db8::10.80``), unless it is one already."""
    if name.endswith((":%s" % port, ".%s" % port)) and name.count(":") <= 1 or \
            name.count(":") > 1 and name.endswith(".%s" % port):
        return name
    return "%s%s%s" % (name, "." if name.count(":") > 1 else ":", port)


def rolling_deploy_analysis_calls(hosts, hostvars, round_number=1):
    """The analysis gate's readings: one gentle.lb.haproxy_member_info (or
    gentle.lb.f5_pool_member_info) call per balancer - a HAProxy or an F5
    device: delegate host and connection options, as the binding has them -
    for ``hosts``, reading every backend (pool) their bindings name (all of
    them when one binding names none).  Each call keeps the hosts it serves
    and, per host, the member names and addresses that are its members
    (``servers``)."""
    calls = []
    by_key = {}
    for host in hosts:
        me = _me(hostvars, host)
        for binding in me["bindings"]:
            kind = binding.get("type")
            if kind not in ANALYSIS_CONNECTION:
                continue
            options = dict((k, binding[k]) for k in ANALYSIS_CONNECTION[kind] if binding.get(k) is not None)
            for delegate in _delegates(binding, host, {}):
                key = json.dumps([delegate, options] if kind == "haproxy" else [kind, delegate, options],
                                 sort_keys=True, default=str)
                call = by_key.get(key)
                if call is None:
                    call = dict(key=key, round=int(round_number), type=kind, delegate_to=delegate,
                                options=copy.deepcopy(options), backends=[], all_backends=False,
                                hosts=[], servers={})
                    by_key[key] = call
                    calls.append(call)
                backends = binding.get(ANALYSIS_CONTAINER[kind])
                if backends is None:
                    call["all_backends"] = True
                for backend in ([backends] if isinstance(backends, str) else backends or []):
                    if backend not in call["backends"]:
                        call["backends"].append(backend)
                if host not in call["hosts"]:
                    call["hosts"].append(host)
                mine = call["servers"].setdefault(host, dict(names=[], addresses=[]))
                for field, values in zip(("names", "addresses"), _member_values(binding, kind)):
                    mine[field].extend(v for v in values if v not in mine[field])
    for call in calls:
        container = ANALYSIS_CONTAINER[call["type"]]
        if not call["all_backends"] and call["backends"]:
            call["options"][container] = list(call["backends"])
        call["label"] = "%s %s" % (call["delegate_to"], ", ".join(call["backends"]) if not call["all_backends"]
                                   else "every %s" % container)
        if call["type"] != "haproxy":
            call["label"] = "%s %s" % (call["type"], call["label"])
    return calls


def rolling_deploy_analysis_uncovered(hosts, hostvars, thresholds=None):
    """One sentence per binding type of ``hosts`` the analysis gate cannot
    read (IPVS, keepalived, health_file), and with ``thresholds`` one for
    f5 bindings when some of them are not offered by F5, for the role's one
    warning."""
    kinds = []
    for host in hosts:
        for binding in _me(hostvars, host)["bindings"]:
            kind = binding.get("type")
            if kind not in kinds and (kind in ANALYSIS_UNCOVERED or kind == "f5"):
                kinds.append(kind)
    said = [ANALYSIS_UNCOVERED[kind] for kind in kinds if kind in ANALYSIS_UNCOVERED]
    given = dict(thresholds or {})
    not_offered = sorted(key for key in F5_NOT_OFFERED if given.get(key) not in (None, ""))
    if "f5" in kinds and not_offered:
        said.append("F5 member statistics count no errors and no response times: %s do not judge f5 bindings%s"
                    % (", ".join(not_offered), "" if given.get("min_traffic_share") not in (None, "") else
                       " (set min_traffic_share to judge them by their share of the traffic)"))
    return said


def _server_names(servers, entries, kind="haproxy"):
    """The server names that are the host's members in a reading."""
    names = list(servers.get("names", []))
    for entry in entries:
        probes = [entry]
        if kind == "f5" and "%" in str(entry.get("address")):
            # As f5_pool_member matches: an address without %N is the same IP
            # in any route domain (10.0.0.3 finds 10.0.0.3%2).
            probes.append(dict(entry, address=str(entry["address"]).split("%", 1)[0], name=None))
        for address in servers.get("addresses", []):
            if entry.get("name") not in names and any(_matches(address, probe) for probe in probes):
                names.append(entry.get("name"))
    return names


def rolling_deploy_analysis_verdict(host, before, after, thresholds=None, round_number=None):
    """The analysis gate's verdict on ``host`` from the registers of the two
    readings (rolling_deploy_analysis_calls, at the start and at the end of
    the soak): rolling_deploy_analysis per balancer that serves the host,
    then ``fail`` if one fails, else ``pass`` if one passes, else
    ``no_data``.  A reading that failed (the balancer did not answer) gives
    ``no_data`` for that balancer with its message: the gate judges the
    node's traffic, and without a reading it has none to judge.  Returns
    None when no reading concerned the host (no haproxy or f5 binding),
    else {verdict, reasons, node, error_type (on fail), msg, balancers,
    not_offered (the thresholds F5 cannot judge, when an F5 pool was read)}."""
    def mine(register):
        found = {}
        for result in _results(register):
            call = result["item"]
            if not isinstance(call, dict) or host not in call.get("hosts", []):
                continue
            if round_number is not None and call.get("round") != int(round_number):
                continue
            found[call["key"]] = (call, result)
        return found
    first, last = mine(before), mine(after)
    if not last and not first:
        return None
    balancers = {}
    for key in sorted(set(first) | set(last)):
        call = (last.get(key) or first.get(key))[0]
        then, now = first.get(key, (None, None))[1], last.get(key, (None, None))[1]
        broken = [r for r in (then, now) if r is None or _failed(r)]
        if broken:
            text = _failure_text(broken[0]) if broken[0] is not None else "one of the two readings is missing"
            balancers[call["label"]] = dict(verdict="no_data", reasons=["reading failed: %s" % text], node=None)
            continue
        names = _server_names(call["servers"].get(host, {}), _members_of(now), call.get("type", "haproxy"))
        try:
            found = rolling_deploy_analysis(now, then, names, thresholds, balancer=call.get("type", "haproxy"))
        except AnalysisMemberMissing as exc:
            found = dict(verdict="no_data", reasons=[str(exc).split(": ", 1)[-1]], node=None)
        balancers[call["label"]] = dict(verdict=found["verdict"], reasons=found["reasons"], node=found["node"])
        if found.get("not_offered"):
            balancers[call["label"]]["not_offered"] = found["not_offered"]
    verdicts = [b["verdict"] for b in balancers.values()]
    verdict = "fail" if "fail" in verdicts else "pass" if "pass" in verdicts else "no_data"
    delegates = dict((call["label"], call["delegate_to"]) for call, _r in list(first.values()) + list(last.values()))
    reasons = ["%s: %s" % (delegates[label], text) for label, b in sorted(balancers.items())
               for text in b["reasons"] if b["verdict"] == verdict or verdict == "no_data"]
    chosen = [b["node"] for b in balancers.values() if b["verdict"] == verdict and b["node"]]
    result = dict(verdict=verdict, reasons=reasons, node=chosen[0] if chosen else None, balancers=balancers)
    not_offered = sorted(set(text for b in balancers.values() for text in b.get("not_offered", [])))
    if not_offered:
        result["not_offered"] = not_offered
    if verdict == "fail":
        result.update(error_type=ANALYSIS_FAILED,
                      msg="analysis gate: the node's traffic over the soak failed the thresholds: %s"
                          % "; ".join(reasons))
    elif verdict == "no_data":
        result["msg"] = "analysis gate: no verdict for %s (passed without one): %s" % (host, "; ".join(reasons))
    else:
        result["msg"] = "analysis gate: passed" + (" (%s)" % "; ".join(not_offered) if not_offered else "")
    return result


def rolling_deploy_warn(text):
    """Show ``text`` as one Ansible warning (shown once however often it is
    templated) and return it, for a debug task's msg."""
    from ansible.utils.display import Display
    Display().warning(str(text))
    return text


def rolling_deploy_timeline_analysis(timeline, analysis):
    """The host's timeline with the analysis gate's ``analysis`` ({verdict,
    reasons, node}) on its soak phase (the window it judged)."""
    timeline = [dict(entry) for entry in (timeline or [])]
    for entry in reversed(timeline):
        if entry.get("phase") == "soak":
            entry["analysis"] = analysis
            break
    return timeline


# --------------------------------------------------------------------------
# The report: the play's timeline as one self-contained HTML page
# --------------------------------------------------------------------------

# Every phase the timeline knows, in the order a host goes through them, with
# its colour and the legend's words.  A phase not listed (a newer role) is
# drawn grey with its own name.
REPORT_PHASES = (
    ("before_drain", "#9e9e9e", "before_drain hook"),
    ("drain", "#f39c12", "drain"),
    ("wait", "#f7c66b", "wait for sessions"),
    ("deploy", "#3b7dd8", "deploy"),
    ("health", "#17a2b8", "health gate"),
    ("restore", "#2e9e4f", "restore"),
    ("restore_wait", "#8fd19e", "wait until usable"),
    ("soak", "#8e6cc4", "soak / analysis"),
    ("after_restore", "#9e9e9e", "after_restore hook"),
    ("failure_restore", "#d46a9f", "failure restore"),
    ("rollback_drain", "#c0661a", "rollback: drain"),
    ("rollback", "#7a4b2a", "rollback tasks"),
    ("rollback_health", "#4f7f86", "rollback: health"),
    ("rollback_restore", "#5b8a3c", "rollback: restore"),
)
REPORT_COLOURS = dict((name, colour) for name, colour, _words in REPORT_PHASES)
REPORT_WORDS = dict((name, words) for name, _colour, words in REPORT_PHASES)
# The analysis gate's counters beside a lane: (key of its node counters, heading).
REPORT_COUNTERS = (("requests", "requests"), ("responses_5xx", "5xx"), ("errors", "errors"),
                   ("error_rate", "error rate"), ("response_time_ms", "resp. ms"))
# A bar gets its name written inside from this share of the axis on.
REPORT_LABEL_SHARE = 7.0
REPORT_STEPS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800)
REPORT_CSS = """
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; margin: 1.5em; }
h1 { font-size: 1.4em; margin: 0 0 .2em; }
h2 { font-size: 1em; margin: .8em 0 .2em; color: #555; }
.summary { color: #444; margin: 0 0 .8em; }
.badge { display: inline-block; padding: 0 .5em; border-radius: 3px; background: #eee; margin-right: .4em; }
.badge.failed, .result.failed { background: #c62828; color: #fff; }
.badge.check-mode { background: #fff3cd; }
.legend { display: flex; flex-wrap: wrap; gap: .3em 1em; margin: 0 0 1em; font-size: .9em; }
.legend .swatch { display: inline-block; width: 1.4em; height: .9em; vertical-align: middle; margin-right: .3em;
                  border-radius: 2px; }
.lane, .axis-row { display: grid; grid-template-columns: 13em 1fr 22em; column-gap: 1em; align-items: center; }
.lane { border-top: 1px solid #e4e4e4; padding: .35em 0; }
.lane.failed { background: #fdecea; }
.label { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.node { font-weight: 600; }
.result { font-size: .8em; padding: 0 .4em; border-radius: 3px; background: #e0e0e0; margin-left: .3em; }
.result.done { background: #2e9e4f; color: #fff; }
.meta { display: block; font-size: .8em; color: #666; }
.track, .axis { position: relative; height: 1.8em; }
.track { background: #f6f6f6; border-radius: 3px; }
.axis { height: 1.4em; border-bottom: 1px solid #999; font-size: .75em; color: #555; }
.tick { position: absolute; bottom: 0; border-left: 1px solid #999; height: .5em; }
.tick span { position: absolute; bottom: .6em; left: -1.5em; width: 3em; text-align: center; }
.bar { position: absolute; top: .2em; bottom: .2em; min-width: 2px; border-radius: 2px; overflow: hidden;
       color: #fff; font-size: .75em; line-height: 1.9em; white-space: nowrap; text-indent: .3em;
       box-sizing: border-box; }
.bar.failed { outline: 2px solid #b71c1c; outline-offset: 1px;
              background-image: repeating-linear-gradient(45deg, rgba(183, 28, 28, .55) 0 4px, transparent 4px 8px); }
.marker { position: absolute; top: -.15em; margin-left: -.5em; color: #b71c1c; font-weight: 700; font-size: 1.2em; }
.failure { grid-column: 2 / 4; margin: .3em 0 0; color: #8e1b1b; }
.failure .why { font-weight: 600; }
.counters { font-size: .85em; }
.counters dl { display: inline-grid; grid-auto-flow: column; grid-template-rows: auto auto; gap: 0 .8em; margin: 0;
               vertical-align: middle; }
.counters dt { color: #666; font-size: .85em; }
.counters dd { margin: 0; font-variant-numeric: tabular-nums; }
.counters dd.bad { color: #c62828; font-weight: 700; }
.verdict { display: inline-block; padding: 0 .4em; border-radius: 3px; margin-right: .6em; background: #e0e0e0; }
.verdict-pass { background: #2e9e4f; color: #fff; }
.verdict-fail { background: #c62828; color: #fff; }
.counters .reasons { display: block; color: #666; font-size: .9em; white-space: normal; }
.none { color: #aaa; }
"""


def _esc(value):
    """Text from the timeline, safe in an element and in a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def _css_name(value):
    """A phase or result as a class name: the timeline's words, nothing else."""
    return re.sub(r"[^a-z0-9_-]+", "-", str(value).lower()).strip("-") or "unknown"


def _seconds(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _report_step(span):
    """A round tick step for an axis of ``span`` seconds: at most about ten ticks."""
    for step in REPORT_STEPS:
        if span / step <= 10:
            return step
    return float(math.ceil(span / 10.0 / 3600.0) * 3600)


def _report_offset(seconds):
    """+12 s, +2 min 30 s, +1 h 5 min: a time on the axis, from the rollout's start."""
    seconds = round(seconds, 1)
    if seconds < 60:
        return "+%g s" % seconds
    minutes, rest = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return "+%d min" % minutes + (" %d s" % rest if rest else "")
    hours, minutes = divmod(minutes, 60)
    return "+%d h" % hours + (" %d min" % minutes if minutes else "")


def _clock(stamp):
    """HH:MM:SS.mmm UTC, for a bar's tooltip."""
    return _iso(stamp)[11:23]


class _Axis(object):
    """The common time axis: epoch seconds -> percent of the track's width."""

    def __init__(self, entries):
        starts = [_seconds(e.get("started")) for e in entries]
        ends = [_seconds(e.get("ended")) for e in entries]
        starts = [s for s in starts if s is not None]
        ends = [s for s in ends if s is not None]
        self.start = min(starts) if starts else 0.0
        self.end = max(ends + starts) if starts else 0.0
        # An instant rollout (a check-mode run of one node) still gets a visible axis.
        self.span = max(self.end - self.start, 1.0)

    def percent(self, stamp):
        return max(0.0, min(100.0, (float(stamp) - self.start) * 100.0 / self.span))

    def ticks(self):
        step = _report_step(self.span)
        count = int(self.span // step)
        return [step * n for n in range(count + 1)]


def _report_hosts(timeline, timings):
    """The lanes: [(host, its entries in start order)], by batch, then by
    first start; the hosts of ``timings`` without entries last (not run,
    skipped), in the play's order."""
    by_host = {}
    for entry in timeline:
        by_host.setdefault(str(entry.get("host")), []).append(entry)
    for entries in by_host.values():
        entries.sort(key=lambda e: (_seconds(e.get("started")) or 0, _seconds(e.get("ended")) or 0))
    ran = sorted(by_host, key=lambda h: (_batch(by_host[h]), _seconds(by_host[h][0].get("started")) or 0, h))
    idle = [str(h) for h in timings if str(h) not in by_host]
    return [(host, by_host[host]) for host in ran] + [(host, []) for host in idle]


def _batch(entries):
    try:
        return int(entries[0].get("batch") or 0)
    except (TypeError, ValueError, IndexError):
        return 0


def _lane_result(entries, timing):
    """done, failed, skipped or not run: the host's timings say it; without
    them, whether a phase failed."""
    result = (timing or {}).get("result")
    if result:
        return str(result)
    if not entries:
        return "not run"
    return "failed" if any(e.get("result") == "failed" for e in entries) else "done"


def _bar_html(host, entry, axis):
    phase = str(entry.get("phase"))
    started, ended = _seconds(entry.get("started")), _seconds(entry.get("ended"))
    if started is None or ended is None:
        return ""
    left = axis.percent(started)
    width = max(axis.percent(ended) - left, 0.0)
    failed = entry.get("result") == "failed"
    words = REPORT_WORDS.get(phase, phase)
    tip = "%s: %s - %s UTC, %.3f s, %s" % (
        words, _clock(started), _clock(ended), max(ended - started, 0.0), entry.get("result") or "ok")
    if failed and entry.get("msg"):
        tip += " - " + str(entry["msg"])
    for binding in entry.get("bindings") or []:
        if isinstance(binding, dict):
            tip += "\n%s: %s" % (binding.get("label"), binding.get("result"))
    return ('<div class="bar phase-%s%s" data-node="%s" data-phase="%s" data-result="%s" data-seconds="%.3f" '
            'style="left:%.3f%%;width:%.3f%%;background-color:%s" title="%s">%s</div>'
            % (_css_name(phase), " failed" if failed else "", _esc(host), _esc(phase), _esc(entry.get("result")),
               max(ended - started, 0.0), left, width, REPORT_COLOURS.get(phase, "#9e9e9e"), _esc(tip),
               _esc(phase) if width >= REPORT_LABEL_SHARE else ""))


def _marker_html(host, entry, axis):
    """A cross at the end of a failed phase, where the failure happened."""
    ended = _seconds(entry.get("ended"))
    if ended is None:
        return ""
    return ('<span class="marker" data-node="%s" data-phase="%s" style="left:%.3f%%" title="%s">&#x2716;</span>'
            % (_esc(host), _esc(entry.get("phase")), axis.percent(ended), _esc(entry.get("msg") or "failed")))


def _failure_html(host, entry):
    """The reason, in words, under the lane."""
    step = entry.get("step") or entry.get("phase")
    error_type = entry.get("error_type")
    return ('<p class="failure" data-node="%s" data-phase="%s" data-step="%s" data-error-type="%s">'
            '<span class="why">&#x2716; %s failed at step %s%s:</span> <span class="msg">%s</span></p>'
            % (_esc(host), _esc(entry.get("phase")), _esc(step), _esc(error_type), _esc(entry.get("phase")),
               _esc(step), (" (%s)" % _esc(error_type)) if error_type else "", _esc(entry.get("msg") or "")))


def _counter_text(key, value):
    if value is None:
        return "-"
    if key == "error_rate":
        return "%.2f%%" % (float(value) * 100)
    if key == "response_time_ms":
        return "%g" % float(value)
    return str(value)


def _counters_html(host, entries):
    """The analysis gate's verdict and the node's counters over the soak,
    beside the lane; an empty cell when the gate did not judge the node."""
    analyses = [e["analysis"] for e in entries if isinstance(e.get("analysis"), dict)]
    if not analyses:
        return '<div class="counters none" data-node="%s">-</div>' % _esc(host)
    analysis = analyses[-1]
    verdict = str(analysis.get("verdict") or "no_data")
    reasons = [str(r) for r in analysis.get("reasons") or []]
    node = analysis.get("node") if isinstance(analysis.get("node"), dict) else {}
    cells = []
    for key, heading in REPORT_COUNTERS:
        value = node.get(key)
        bad = key in ("responses_5xx", "errors") and verdict == "fail" and bool(value)
        cells.append('<dt>%s</dt><dd data-counter="%s"%s>%s</dd>'
                     % (_esc(heading), _esc(key), ' class="bad"' if bad else "", _esc(_counter_text(key, value))))
    # A failed verdict's reasons are in the failure line already; no_data's say why there is none.
    why = ('<span class="reasons">%s</span>' % _esc("; ".join(reasons))) if reasons and verdict != "fail" else ""
    return ('<div class="counters" data-node="%s" data-verdict="%s" title="%s"><span class="verdict verdict-%s">%s'
            '</span><dl>%s</dl>%s</div>'
            % (_esc(host), _esc(verdict), _esc("; ".join(reasons) or verdict), _css_name(verdict), _esc(verdict),
               "".join(cells) if node else "", why))


def _lane_html(host, entries, timing, axis):
    result = _lane_result(entries, timing)
    batch = _batch(entries)
    rounds = sorted(set(int(e.get("round") or 1) for e in entries))
    failed = [e for e in entries if e.get("result") == "failed"]
    meta = []
    if batch:
        meta.append("batch %d" % batch)
    if rounds and rounds != [1]:
        meta.append("round %s" % ", ".join(str(r) for r in rounds))
    if entries:
        meta.append("%.1f s" % (max(_seconds(e.get("ended")) or 0 for e in entries)
                                - min(_seconds(e.get("started")) or 0 for e in entries)))
    parts = ['<div class="lane %s%s" data-node="%s" data-batch="%s" data-result="%s">'
             % (_css_name(result), " failed" if failed and result != "failed" else "", _esc(host),
                batch or "", _esc(result)),
             '<div class="label" title="%s"><span class="node">%s</span><span class="result %s">%s</span>'
             '<span class="meta">%s</span></div>' % (_esc(host), _esc(host), _css_name(result), _esc(result),
                                                     _esc(" \u00b7 ".join(meta))),
             '<div class="track">']
    parts.extend(_bar_html(host, e, axis) for e in entries)
    parts.extend(_marker_html(host, e, axis) for e in failed)
    parts.append("</div>")
    parts.append(_counters_html(host, entries))
    parts.extend(_failure_html(host, e) for e in failed)
    if not entries and (timing or {}).get("msg"):
        parts.append('<p class="failure not-run" data-node="%s"><span class="msg">%s</span></p>'
                     % (_esc(host), _esc(timing["msg"])))
    parts.append("</div>")
    return "".join(parts)


def _axis_html(axis):
    ticks = "".join('<div class="tick" style="left:%.3f%%"><span>%s</span></div>'
                    % (offset * 100.0 / axis.span, _esc(_report_offset(offset))) for offset in axis.ticks())
    return ('<div class="axis-row"><div class="label meta">UTC %s</div><div class="axis">%s</div>'
            '<div class="counters meta">analysis gate (over the soak)</div></div>'
            % (_esc(_iso(axis.start)[:19].replace("T", " ")), ticks))


def _legend_html(entries):
    seen = set(str(e.get("phase")) for e in entries)
    known = [name for name, _colour, _words in REPORT_PHASES if name in seen]
    known += sorted(seen - set(known))
    items = "".join('<span class="key" data-phase="%s"><span class="swatch" style="background:%s"></span>%s</span>'
                    % (_esc(name), REPORT_COLOURS.get(name, "#9e9e9e"), _esc(REPORT_WORDS.get(name, name)))
                    for name in known)
    return ('<div class="legend">%s<span class="key"><span class="marker-key">&#x2716;</span> failed</span></div>'
            % items)


def rolling_deploy_report_html(timeline, timings=None, title=None):
    """The play's timeline (rolling_deploy_play_timeline) as one HTML page:
    a lane per host with its phases as bars on a common time axis, the
    failures marked with their reasons, the batch numbers, and the analysis
    gate's verdict and counters beside each lane it judged.  ``timings``
    ({host: rolling_deploy_timings}) adds the hosts without a phase (not run,
    skipped) and each host's result.  Self-contained: inline CSS, no script,
    no external URL; every text from the timeline is escaped."""
    timeline = [e for e in (timeline or []) if isinstance(e, dict)]
    timings = dict(timings or {})
    title = str(title or "gentle.lb rolling deploy")
    axis = _Axis(timeline)
    lanes = _report_hosts(timeline, timings)
    results = [_lane_result(entries, timings.get(host)) for host, entries in lanes]
    badges = ['<span class="badge">%d host(s)</span>' % len(lanes)]
    failed = results.count("failed")
    if failed:
        badges.append('<span class="badge failed">%d failed</span>' % failed)
    if any(e.get("check_mode") for e in timeline):
        badges.append('<span class="badge check-mode">check mode: nothing was changed</span>')
    when = "no phase recorded"
    if timeline:
        when = "%s - %s UTC, %.1f s" % (_iso(axis.start)[:19].replace("T", " "), _iso(axis.end)[11:19],
                                        axis.end - axis.start)
    body = ['<header><h1>%s</h1><p class="summary">%s %s</p></header>' % (_esc(title), " ".join(badges), _esc(when)),
            _legend_html(timeline), '<div class="chart">', _axis_html(axis)]
    section = opened = None
    for host, entries in lanes:
        batch = _batch(entries) if entries else None
        if not opened or batch != section:
            if opened:
                body.append("</section>")
            opened = True
            body.append('<section class="batch" data-batch="%s"><h2>%s</h2>'
                        % (batch or "", ("Batch %d" % batch) if batch else "Not run or skipped"))
            section = batch
        body.append(_lane_html(host, entries, timings.get(host), axis))
    if opened:
        body.append("</section>")
    body.append("</div>")
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>%s</title>'
            '<meta name="generator" content="gentle.lb.rolling_deploy_report_html"><style>%s</style></head>\n'
            '<body>%s</body></html>\n' % (_esc(title), REPORT_CSS, "\n".join(body)))


class FilterModule(object):
    def filters(self):
        return dict(
            rolling_deploy_problems=rolling_deploy_problems,
            rolling_deploy_calls=rolling_deploy_calls,
            rolling_deploy_outcome=rolling_deploy_outcome,
            rolling_deploy_hosts=rolling_deploy_hosts,
            rolling_deploy_split=rolling_deploy_split,
            rolling_deploy_record=rolling_deploy_record,
            rolling_deploy_serial=rolling_deploy_serial,
            rolling_deploy_approval_points=rolling_deploy_approval_points,
            rolling_deploy_resume_state=rolling_deploy_resume_state,
            rolling_deploy_max_failed=rolling_deploy_max_failed,
            rolling_deploy_stop=rolling_deploy_stop,
            rolling_deploy_time_left=rolling_deploy_time_left,
            rolling_deploy_timed=rolling_deploy_timed,
            rolling_deploy_timeline=rolling_deploy_timeline,
            rolling_deploy_timeline_failure=rolling_deploy_timeline_failure,
            rolling_deploy_batch=rolling_deploy_batch,
            rolling_deploy_play_timeline=rolling_deploy_play_timeline,
            rolling_deploy_analysis=rolling_deploy_analysis,
            rolling_deploy_analysis_calls=rolling_deploy_analysis_calls,
            rolling_deploy_analysis_uncovered=rolling_deploy_analysis_uncovered,
            rolling_deploy_analysis_verdict=rolling_deploy_analysis_verdict,
            rolling_deploy_warn=rolling_deploy_warn,
            rolling_deploy_timeline_analysis=rolling_deploy_timeline_analysis,
            rolling_deploy_report_html=rolling_deploy_report_html,
        )
