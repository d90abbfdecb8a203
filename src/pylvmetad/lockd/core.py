"""lvmlockd's daemon state: lockspaces, resources, locks, and the per-resource passes.

Rules of this module:

* No sockets, no files.  Requests come in as :class:`~.protocol.Request`
  with the connection's client id; replies go out as text through the
  future :meth:`Lockd.submit` returns.  The lock manager
  (:class:`~.manager.LockManager`) and the local lvmetad
  (:class:`MetadLink`) are handed in, so the same code runs on sanlock, on
  the in-memory simulation of several hosts, or in a unit test.
* Whether something may happen is looked up in :mod:`.rules` (the tables)
  and :mod:`.lvb` (the value-block decisions); this module carries it out.
* Locks belong to connections (client ids), never to pids (§1.6).
* What the daemon counts about itself goes to the :class:`~.figures.LockdFigures`
  handed in (requests, waits, holds, retries, invalidations, lockspaces,
  lock-manager errors); the metrics only read it and this state.

Theory of operation
-------------------
Each lockspace has one serial loop (an asyncio task): requests routed to it
are appended to ``incoming``; the loop moves them onto their resources'
queues and runs the passes of §4.4 over every resource, awaiting the lock
manager where needed.  So one lockspace's operations are applied in
arrival order, one at a time, while a lock-manager call in one lockspace
(a 20 s sanlock join, a 1 s retry pause) blocks no other lockspace and no
other client.  Requests that do not belong to a lockspace (``init_vg``,
``running_lm``, ``start_wait`` ...) run in "worker" tasks serialised by one
lock, like lvmlockd's worker thread.

A request leaves the system exactly once: :meth:`Action.finish` builds its
reply (``result_flags`` depend on the daemon's state at that moment, §1.4)
and resolves the future.  Invalidations of the local lvmetad (§5.4) are
awaited inside the lockspace loop *before* the lock's reply is finished,
so the command that got the lock is sure to see the invalid flag.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Protocol

from . import protocol as P
from .adopt import AdoptLv, AdoptTable, AdoptVg
from .figures import LockdFigures
from .lvb import Known, ValueBlock, on_acquire, on_release, written
from .manager import GL_NAME, LOCK_ARGS_VERSION, VG_NAME, LmResource, LockManager, LockspaceLM, lock_lv_name
from .protocol import Mode, Op, Opt, Request, Rt
from .rules import LISTED, LOCK_TABLE, VERDICT_RESULT, Ls, LsEvent, Rel, Verdict, lockspace_step

log = logging.getLogger("pylvmlockd")

MAX_HOST_ID = 2000
SANLOCK_NAME_LEN = 48
#: the client id of internal actions (lvmlockd reserves 0xFFFFFFFF)
INTERNAL_CLIENT = 0xFFFFFFFF


class MetadLink(Protocol):
    """The local lvmetad, as lvmlockd talks to it (§5.4): two messages, answers ignored.

    Each may say whether the message was delivered (False: dropped, counted as a
    failed invalidation); None means nothing to tell.
    """

    async def set_vg_info(self, uuid: str, name: str, version: int) -> bool | None: ...

    async def set_global_invalid(self) -> bool | None: ...


class NoMetad:
    """No lvmetad: invalidations go nowhere (lvmlockd drops them when it cannot connect)."""

    async def set_vg_info(self, uuid: str, name: str, version: int) -> None:
        return None

    async def set_global_invalid(self) -> None:
        return None


@dataclass
class Lock:
    """One holder's lock on a resource: transient (owned by a client) or persistent (owner 0)."""

    mode: Mode
    client_id: int
    persistent: bool = False
    #: VG lock: the version a vg_update asked to write at the ex release
    version: int = 0
    #: when it was granted (the figures' clock), for its hold time
    since: float = 0.0


@dataclass
class Resource:
    """GLLK, VGLK or one LV (named by its UUID) in one lockspace (§4.2)."""

    name: str
    rt: Rt
    mode: Mode = Mode.UN
    locks: list[Lock] = field(default_factory=list)
    queue: list[Action] = field(default_factory=list)
    known: Known = field(default_factory=Known)
    vb: ValueBlock = field(default_factory=ValueBlock)
    last_client_id: int = 0
    lv_lock_args: str = ""

    def transient_of(self, client_id: int) -> Lock | None:
        return next((lk for lk in self.locks if not lk.persistent and lk.client_id == client_id), None)

    def persistent_lock(self) -> Lock | None:
        return next((lk for lk in self.locks if lk.persistent), None)

    def lm(self) -> LmResource:
        return LmResource(self.name, self.rt, self.lv_lock_args)


def _rel(lock: Lock | None, mode: Mode) -> Rel:
    if lock is None:
        return Rel.NONE
    if lock.mode == mode:
        return Rel.SAME
    return Rel.WEAKER if lock.mode == Mode.SH else Rel.STRONGER


class Action:
    """One request in flight; :meth:`finish` replies to it exactly once."""

    def __init__(self, lockd: Lockd, req: Request, client_id: int) -> None:
        self.lockd = lockd
        self.req = req
        self.client_id = client_id
        self.retries = 0
        self.lm_result = 0
        #: the lock type the reply names (§1.3): the request's, else the lockspace's
        self.lock_type: int | None = req.lock_type
        self.searched = False
        self.dup_gl = False
        self.warn_gl_removed = False
        self.vg_lock_args = ""
        self.lv_lock_args = ""
        self.reply: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.result: int | None = None
        #: when it arrived (the figures' clock)
        self.arrived = lockd.figures.now()

    @property
    def mode(self) -> Mode:
        return self.req.mode

    @property
    def persistent(self) -> bool:
        return bool(self.req.opts & Opt.PERSISTENT)

    def finish(self, result: int) -> None:
        if self.result is not None:
            return
        self.result = result
        if result == P.EUNATCH:
            result = P.ENOLS
        self.lockd.replied(self, result)
        if not self.reply.done():
            self.reply.set_result(self.lockd.reply_text(self, result))

    def drop(self) -> None:
        """The client went away: no reply (its connection is closed)."""
        self.result = P.ECANCELED
        if not self.reply.done():
            self.reply.cancel()


class Lockspace:
    """One started (or starting, stopping ...) VG lockspace ``lvm_<vg>`` (§4.1)."""

    def __init__(self, lockd: Lockd, req: Request, host_id: int, lm: LockspaceLM) -> None:
        self.lockd = lockd
        self.name = req.ls_name
        self.vg_name = req.vg_name
        self.vg_uuid = req.vg_uuid
        self.vg_lock_args = req.vg_lock_args
        self.lock_type = req.lock_type if req.lock_type is not None else P.LM_SANLOCK
        self.host_id = host_id
        self.lm = lm
        self.state = Ls.PREPARING
        self.resources: dict[str, Resource] = {"VGLK": Resource(VG_NAME, Rt.VG)}
        self.incoming: list[Action] = []
        self.closed: set[int] = set()
        self.free_hint = 0
        self.gl_enabled = False
        self.wake = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()
        self.retry_pending = False
        self.stop_action: Action | None = None
        self.stop_kind = "stop"  # stop, free, drop
        self.task: asyncio.Task[None] | None = None

    def step(self, event: LsEvent) -> int | None:
        self.state, reply = lockspace_step(self.state, event)
        return reply

    def holds_locks(self, *, lv_only: bool) -> bool:
        return any(r.locks for r in self.resources.values() if not lv_only or r.rt is Rt.LV)

    def enqueue(self, act: Action) -> None:
        self.incoming.append(act)
        self.idle.clear()
        self.wake.set()

    # -- the loop -----------------------------------------------------------
    async def run(self) -> None:
        try:
            while True:
                if not self.incoming and not self.retry_pending and not self.closed and self.stop_action is None:
                    self.idle.set()
                    await self.wake.wait()
                self.wake.clear()
                self.idle.clear()
                if self.retry_pending:
                    self.retry_pending = False
                    if self.lockd.retry_delay:
                        await asyncio.sleep(self.lockd.retry_delay)
                batch, self.incoming = self.incoming, []
                for act in batch:
                    await self.place(act)
                for r in list(self.resources.values()):
                    await self.process(r)
                self.closed.clear()
                if self.stop_action is not None:
                    await self.finish_stop()
                    return
        finally:
            self.idle.set()

    async def place(self, act: Action) -> None:
        """Move one arrived request onto its resource, or carry out a lockspace-level op."""
        req = act.req
        if self.state is Ls.KILLED and _refused_when_killed(req):
            act.finish(P.EVGKILLED)
            return
        if self.stop_action is not None:  # queued behind a stop
            act.finish(P.ENOLS)
            return
        op = req.op
        if op is Op.LOCK:
            r = self.resource_for(req)
            conflicts = req.mode is Mode.EX or r.mode is Mode.EX
            others = any(lk.client_id != act.client_id for lk in r.locks)
            if req.mode in (Mode.SH, Mode.EX) and ((conflicts and others) or r.queue):
                self.lockd.figures.local_waits += 1  # it queues behind another local holder
            r.queue.append(act)
        elif op is Op.UPDATE:
            act.finish(self.res_update(act))
        elif op is Op.FREE and req.rt is Rt.LV:
            await self.free_lv(act)
        elif op is Op.FREE:
            await self.free_vg(act)
        elif op is Op.STOP:
            self.begin_stop(act, "stop")
        elif op is Op.DROP_VG:
            self.begin_stop(act, "drop")
        elif op is Op.RENAME_BEFORE:
            if await self.lm.other_hosts():
                act.finish(P.EBUSY)
            else:
                self.begin_stop(act, "stop")
        elif op is Op.BUSY:
            act.finish(P.EBUSY if await self.lm.other_hosts() else 0)
        elif op is Op.KILL_VG:
            self.step(LsEvent.KILL)
            act.finish(0)
        elif op is Op.FIND_FREE_LOCK:
            result, self.free_hint = await self.lm.find_free_lock(self.free_hint)
            self.lockd.figures.lm_result("find_free_lock", result)
            act.lm_result = result
            act.finish(result)
        elif op in (Op.ENABLE, Op.DISABLE):
            act.finish(await self.able_gl(act, enable=op is Op.ENABLE))
        else:
            act.finish(P.EINVAL)

    def resource_for(self, req: Request) -> Resource:
        if req.rt is Rt.GL:
            key, rt = GL_NAME, Rt.GL
        elif req.rt is Rt.VG:
            key, rt = VG_NAME, Rt.VG
        else:
            key, rt = req.lv_uuid, Rt.LV
        r = self.resources.get(key)
        if r is None:
            r = self.resources[key] = Resource(key, rt)
        if rt is Rt.LV and req.lv_lock_args:
            r.lv_lock_args = req.lv_lock_args  # a recreated LV may have moved (§3.4)
        return r

    # -- the passes of §4.4 -------------------------------------------------
    async def process(self, r: Resource) -> None:
        # pass 2: bad modes and unlocks
        for act in list(r.queue):
            if act.mode in (Mode.IV, Mode.NL):
                r.queue.remove(act)
                act.finish(P.EINVAL)
            elif act.mode is Mode.UN:
                r.queue.remove(act)
                act.finish(await self.res_unlock(r, act))
        # pass 3: disconnected clients: their transient lock, and one queued request each
        for client_id in self.closed:
            lk = r.transient_of(client_id)
            if lk is not None:
                await self.release(r, lk)
            queued = next((a for a in r.queue if a.client_id == client_id), None)
            if queued is not None:
                r.queue.remove(queued)
                queued.drop()
        # passes 6-10: requests judged against the locks already held here
        for act in list(r.queue):
            own = r.transient_of(act.client_id)
            plk = r.persistent_lock()
            verdict = LOCK_TABLE[act.persistent, _rel(own, act.mode), _rel(plk, act.mode)]
            if verdict is Verdict.QUEUE:
                continue
            r.queue.remove(act)
            if verdict is Verdict.MAKE_PERSISTENT:
                assert own is not None
                own.persistent, own.client_id = True, 0
            if verdict in VERDICT_RESULT:
                act.finish(VERDICT_RESULT[verdict])
                continue
            lock = own if verdict is Verdict.CONVERT_OWN else plk
            assert lock is not None
            act.finish(await self.res_convert(r, lock, act))
        # pass 11: ex here: everything else waits
        if r.mode is Mode.EX:
            return
        # pass 12: grant sh requests up to the first ex one
        for act in list(r.queue):
            if act.mode is Mode.EX:
                break
            if r.mode is Mode.SH:
                r.queue.remove(act)
                self.add_lock(r, act, Mode.SH)
                act.finish(0)
                continue
            await self.try_lock(r, act)
        # pass 13/14: sh here, or the first ex request when nothing is held
        if r.mode is Mode.UN:
            first_ex = next((a for a in r.queue if a.mode is Mode.EX), None)
            if first_ex is not None:
                await self.try_lock(r, first_ex)

    def add_lock(self, r: Resource, act: Action, mode: Mode) -> None:
        since = self.lockd.figures.lock_granted()
        r.locks.append(Lock(mode, 0 if act.persistent else act.client_id, act.persistent, since=since))
        r.last_client_id = act.client_id

    def forget_locks(self, r: Resource, locks: list[Lock]) -> None:
        """Take ``locks`` off ``r`` (their hold times end here)."""
        figures = self.lockd.figures
        for lk in locks:
            figures.lock_released(r.rt, lk.mode, lk.since)
            r.locks.remove(lk)

    async def try_lock(self, r: Resource, act: Action) -> None:
        """An LM acquire for a queued request; the request is retried, or answered."""
        result, retry = await self.res_lock(r, act)
        if result == P.EAGAIN and act.retries <= act.req.max_retries and (retry or r.rt is not Rt.LV):
            act.retries += 1
            self.lockd.figures.retries += 1
            self.lockd.note("S %s R %s res_lock EAGAIN retry", self.name, r.name)  # lvmlockd's debug line
            self.retry_pending = True
            return
        if result == P.EAGAIN:
            self.lockd.figures.refused_by_other_host += 1
        if act in r.queue:
            r.queue.remove(act)
        act.finish(result)

    async def res_lock(self, r: Resource, act: Action) -> tuple[int, bool]:
        acquired = await self.lm.acquire(r.lm(), act.mode)
        self.lockd.figures.lm_result("acquire", acquired.result)
        act.lm_result = acquired.result if acquired.result != P.EUNATCH else 0
        if acquired.result == P.EUNATCH and r.rt is Rt.GL:
            # the GL area reads disabled: forget this GL lockspace (§4.4 end)
            self.lockd.forget_gl(self.name)
            for other in list(r.queue):
                if other is not act:
                    other.finish(P.ECANCELED)
            r.queue.clear()
            self.resources.pop(r.name, None)
            return P.EUNATCH, False
        if acquired.result:
            return acquired.result, acquired.retry
        r.mode = act.mode
        self.add_lock(r, act, act.mode)
        result = 0
        if r.rt is not Rt.LV:
            vb = ValueBlock.unpack(acquired.lvb)
            r.vb = vb
            verdict = on_acquire(vb, r.known)
            r.known = verdict.known
            if verdict.invalidate is not None:
                await self.lockd.invalidate(self, r.rt, verdict.invalidate)
            result = verdict.result
        if self.lockd.dup_gl and self.gl_enabled:
            act.dup_gl = True
        return result, False

    async def release(self, r: Resource, lk: Lock, *, rename_removed: bool = False) -> int:
        """Drop one local holder; the last one releases the LM lock, writing the LVB (§5.2)."""
        if r.mode is Mode.SH and len(r.locks) > 1 and not rename_removed:
            self.forget_locks(r, [lk])
            return 0
        lvb: bytes | None = None
        known = r.known
        if r.mode is Mode.EX and r.rt is not Rt.LV:
            pending = max((x.version for x in r.locks), default=0)
            known, value = on_release(r.rt, r.known, pending)
            if value is not None:
                lvb = written(r.vb, value).pack()
        result = await self.lm.release(r.lm(), lvb, rename_removed=rename_removed)
        self.lockd.figures.lm_result("release", result)
        if result:
            return result
        if lvb is not None:
            r.vb = ValueBlock.unpack(lvb)
        r.known = known
        self.forget_locks(r, list(r.locks) if rename_removed else [lk])
        if not r.locks:
            r.mode = Mode.UN
        return 0

    async def res_unlock(self, r: Resource, act: Action) -> int:
        lk = r.persistent_lock() if act.persistent else r.transient_of(act.client_id)
        r.last_client_id = act.client_id
        if lk is None:
            if act.req.opts & Opt.UNLOCK_CANCEL:
                queued = next(
                    (a for a in r.queue if (a.persistent if act.persistent else a.client_id == act.client_id)),
                    None,
                )
                if queued is not None:
                    r.queue.remove(queued)
                    queued.finish(P.ECANCELED)
                    return P.ECANCELED
            return P.ENOENT
        result = await self.release(r, lk)
        act.lm_result = result
        return result

    async def res_convert(self, r: Resource, lk: Lock, act: Action) -> int:
        if act.mode is Mode.EX and len(r.locks) > 1:
            return P.EAGAIN  # other local sh holders: never waits, never retried (§4.6)
        lvb: bytes | None = None
        known = r.known
        if lk.mode is Mode.EX and r.rt is not Rt.LV:
            known, value = on_release(r.rt, r.known, lk.version)
            if value is not None:
                lvb = written(r.vb, value).pack()
        result = await self.lm.convert(r.lm(), act.mode, lvb)
        self.lockd.figures.lm_result("convert", result)
        act.lm_result = result
        if result:
            return result
        if lvb is not None:
            r.vb = ValueBlock.unpack(lvb)
        r.known = known
        lk.mode = r.mode = act.mode
        r.last_client_id = act.client_id
        return 0

    def res_update(self, act: Action) -> int:
        r = self.resources[VG_NAME]
        lk = r.transient_of(act.client_id)
        if lk is None:
            return P.ENOENT
        if r.mode is not Mode.EX:
            return P.EINVAL
        version = r.known.r_version + 1 if act.req.opts & Opt.NEXT_VERSION else act.req.version
        if version <= r.known.r_version:
            log.error("vg_update %s: version %d not larger than known %d", self.vg_name, version, r.known.r_version)
        lk.version = version
        return 0

    # -- lockspace-level ops -------------------------------------------------
    async def free_lv(self, act: Action) -> None:
        r = self.resources.get(act.req.lv_uuid)
        if r is None:
            act.finish(P.ENOENT)
            return
        if act.req.lv_lock_args:
            r.lv_lock_args = act.req.lv_lock_args
        result = await self.lm.free_lv(r.lm())
        self.lockd.figures.lm_result("free_lv", result)
        act.lm_result = result
        for other in r.queue:
            other.finish(P.ECANCELED)
        del self.resources[r.name]
        act.finish(result)

    async def free_vg(self, act: Action) -> None:
        if await self.lm.other_hosts():
            act.finish(P.EBUSY)
            return
        was_gl = self.lockd.gl_ls_name == self.name
        others = any(ls is not self and ls.state in LISTED for ls in self.lockd.lockspaces.values())
        if was_gl and others:
            act.warn_gl_removed = True
            self.lockd.gl_removed = True
        self.begin_stop(act, "free")

    async def able_gl(self, act: Action, *, enable: bool) -> int:
        lockd = self.lockd
        if self.lock_type != P.LM_SANLOCK:
            return P.EINVAL
        gl = self.resources.get(GL_NAME)
        if gl is not None and gl.locks:
            return P.EINVAL
        if enable and lockd.gl_ls_name and lockd.gl_ls_name != self.name:
            log.error("disable global lock in %s before enable in %s", lockd.gl_ls_name, self.name)
            return P.EINVAL
        result = await self.lm.write_gl(enable)
        self.lockd.figures.lm_result("write_gl", result)
        act.lm_result = result
        if result:
            return result
        self.gl_enabled = enable
        if enable:
            lockd.gl_ls_name = self.name
            lockd.gl_removed = False
        else:
            if lockd.gl_ls_name == self.name:
                lockd.gl_ls_name = ""
            self.resources.pop(GL_NAME, None)
        return 0

    def begin_stop(self, act: Action, kind: str) -> None:
        self.step(LsEvent.STOP)
        self.stop_action = act
        self.stop_kind = kind

    async def finish_stop(self) -> None:
        """Release everything (LVB rules apply), cancel the queue, leave the LM, reply (§9)."""
        free = self.stop_kind == "free"
        for r in list(self.resources.values()):
            for act in r.queue:
                act.finish(P.ECANCELED)
            r.queue.clear()
            if r.locks:
                pending = max(lk.version for lk in r.locks)
                lk = r.locks[0]
                lk.version = pending
                self.forget_locks(r, r.locks[1:])
                rename = free and r.rt is not Rt.LV
                result = await self.release(r, lk, rename_removed=rename)
                if result:
                    log.error("%s: release of %s at stop failed: %d", self.name, r.name, result)
                self.forget_locks(r, list(r.locks))
                r.mode = Mode.UN
        result = await self.lm.leave(free=free)
        self.lockd.figures.lm_result("leave", result)
        if result:
            log.error("%s: leaving the lockspace failed: %d", self.name, result)
        if self.lockd.gl_ls_name == self.name:
            self.lockd.gl_ls_name = ""
        self.step(LsEvent.LEFT)
        self.lockd.figures.lockspace_stopped(self.stop_kind)
        assert self.stop_action is not None
        stop = self.stop_action
        for act in self.incoming:
            act.finish(P.ENOLS)
        self.incoming.clear()
        self.lockd.reap(self)
        stop.finish(0)


def _refused_when_killed(req: Request) -> bool:
    if req.op is Op.LOCK:
        return req.mode is not Mode.UN
    return req.op in (Op.ENABLE, Op.DISABLE, Op.UPDATE, Op.RENAME_BEFORE, Op.FIND_FREE_LOCK)


def read_host_id_file(path: str) -> int:
    """The first ``host_id = N`` line of lvmlockd's host-id file; 0 if none (§6.4.2)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.strip()
                if line.startswith("#") or "=" not in line:
                    continue
                key, _, value = line.partition("=")
                if key.strip() == "host_id" and value.strip().isdigit():
                    return int(value.strip())
    except OSError:
        return 0
    return 0


class Lockd:
    """The daemon: its lockspaces, the global-lock bookkeeping (§4.8), the worker."""

    def __init__(
        self,
        lm: LockManager | None,
        metad: MetadLink | None = None,
        *,
        gl_type: int | None = None,
        host_id: int = 0,
        host_id_file: str = "",
        retry_delay: float = 1.0,
        start_wait_interval: float = 0.0,
        clock: Callable[[], float] = time.time,
        figures: LockdFigures | None = None,
    ) -> None:
        self.lm = lm
        self.metad: MetadLink = metad or NoMetad()
        #: the daemon's GL type (§4.8.1): LM_SANLOCK, LM_DLM or None (undecided)
        self.gl_type = gl_type
        #: -g given: the GL type is not forgotten when the lockspace list empties
        #: (lvmlockd forgets it; lvm reads both spellings of the ENOLS flags alike, §11 quirk 2)
        self.gl_type_static = gl_type is not None
        #: the lockspace holding the enabled sanlock GL ("" when none is known)
        self.gl_ls_name = ""
        self.gl_removed = False
        self.dup_gl = False
        self.host_id = host_id
        self.host_id_file = host_id_file
        self.retry_delay = retry_delay
        self.start_wait_interval = start_wait_interval
        self.clock = clock
        self.lm_running = lm is not None
        self.lockspaces: dict[str, Lockspace] = {}
        self.clients_with_locks: set[int] = set()
        self.client_names: dict[int, str] = {}
        #: what the daemon counts about itself (read by the metrics)
        self.figures = figures if figures is not None else LockdFigures()
        self.worker_lock = asyncio.Lock()
        self.tasks: set[asyncio.Task[None]] = set()
        self.starts_changed = asyncio.Event()
        #: called with (action, result) for every reply (logs)
        self.on_reply: Callable[[Action, int], None] | None = None
        #: called after anything that may change :meth:`adopt_table` (the adopt file's writer)
        self.on_change: Callable[[], None] | None = None
        self.log_ring: list[str] = []

    # -- entry points ----------------------------------------------------------
    def submit(self, req: Request, client_id: int) -> asyncio.Future[str]:
        """Start one request; its reply text arrives on the returned future."""
        act = Action(self, req, client_id)
        if req.cmd and client_id not in self.client_names:
            self.client_names[client_id] = req.cmd
        if req.lock_type in (P.LM_SANLOCK, P.LM_DLM) and self.gl_type is None:
            self.gl_type = req.lock_type
            self.note("set gl_use_%s", P.lock_type_name(req.lock_type))
        if req.op is Op.LOCK and req.mode is not Mode.UN:
            self.clients_with_locks.add(client_id)
        if req.lock_type == P.LM_DLM:
            act.finish(P.EPROTONOSUPPORT)  # pylvmlockd drives sanlock only
            return act.reply
        self.dispatch(act)
        return act.reply

    def client_gone(self, client_id: int) -> None:
        """The connection closed: its transient locks go, its queued requests are dropped (§1.7)."""
        self.client_names.pop(client_id, None)
        if client_id not in self.clients_with_locks:
            return
        self.clients_with_locks.discard(client_id)
        for ls in self.lockspaces.values():
            if ls.state in (Ls.STARTED, Ls.KILLED) and ls.task is not None:
                ls.closed.add(client_id)
                ls.idle.clear()
                ls.wake.set()

    async def quiesce(self) -> None:
        """Wait until no work is runnable: every lockspace loop idle, every worker task done
        (tests use it to step a simulated cluster deterministically)."""
        while True:
            for _ in range(3):
                await asyncio.sleep(0)
            busy = [t for t in self.tasks if not t.done()]
            if busy:
                await asyncio.wait(busy)
                continue
            waiting = [ls for ls in self.lockspaces.values() if not ls.idle.is_set()]
            if waiting:
                await asyncio.gather(*(ls.idle.wait() for ls in waiting))
                continue
            return

    async def close(self) -> None:
        """Stop every lockspace (locks released as at a forced stop) and end the loops."""
        for ls in list(self.lockspaces.values()):
            if ls.state in (Ls.STARTED, Ls.KILLED) and ls.stop_action is None:
                act = Action(self, Request("stop_vg", Op.STOP, Rt.VG, vg_name=ls.vg_name), INTERNAL_CLIENT)
                ls.begin_stop(act, "stop")
                ls.wake.set()
        for ls in list(self.lockspaces.values()):
            if ls.task is not None:
                with contextlib.suppress(Exception):
                    await ls.task
        for t in list(self.tasks):
            t.cancel()
        self.lockspaces.clear()

    # -- routing -----------------------------------------------------------------
    def spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def dispatch(self, act: Action) -> None:
        req = act.req
        op = req.op
        if op in (Op.INIT, Op.START_WAIT, Op.STOP_ALL, Op.RENAME_FINAL, Op.RUNNING_LM):
            self.spawn(self.work(act))
            return
        if op is Op.START:
            self.start_vg(act)
            return
        if req.rt is Rt.GL and op is Op.LOCK:
            target = self.gl_ls_name
        elif op in (Op.ENABLE, Op.DISABLE):
            target = req.ls_name if self.gl_type == P.LM_SANLOCK else self.gl_ls_name
        else:
            target = req.ls_name
        ls = self.lockspaces.get(target) if target else None
        state = ls.state if ls is not None else Ls.ABSENT
        _, refusal = lockspace_step(state, LsEvent.KILL if op is Op.KILL_VG else LsEvent.ROUTE)
        if ls is not None and req.lock_type is not None and req.lock_type != ls.lock_type:
            act.finish(P.EINVAL)
            return
        if refusal == P.ENOLS and req.rt is Rt.GL and op is Op.LOCK and not act.searched:
            if self.gl_type is None and self.lm_running:
                self.gl_type = P.LM_SANLOCK
            if self.gl_type == P.LM_SANLOCK:
                self.spawn(self.work(act))  # search the started lockspaces for an enabled GL
                return
        if refusal is not None:
            act.finish(refusal)
            return
        assert ls is not None
        if act.lock_type is None and op is not Op.STOP:  # stop_vg is not routed by lock type (§3.14)
            act.lock_type = ls.lock_type
        if op is Op.STOP:
            if ls.holds_locks(lv_only=True) and not req.opts & Opt.FORCE:
                act.finish(P.EBUSY)
                return
            if ls.stop_action is not None:
                act.finish(P.ESTALE)
                return
        ls.enqueue(act)

    def start_vg(self, act: Action) -> None:
        req = act.req
        ls = self.lockspaces.get(req.ls_name) if req.ls_name else None
        state = ls.state if ls is not None else Ls.ABSENT
        _, refusal = lockspace_step(state, LsEvent.START)
        if refusal is not None:
            act.finish(refusal)
            return
        if not req.ls_name:
            act.finish(P.EARGS)
            return
        if req.lock_type is None or req.lock_type == P.LM_UNKNOWN:
            act.finish(P.EPERM)
            return
        if self.lm is None:
            act.finish(P.EMANAGER)
            return
        lv_name = lock_lv_name(req.vg_lock_args)
        if lv_name is None:
            act.finish(P.EARGS)
            return
        host_id = req.host_id or self.host_id or (read_host_id_file(self.host_id_file) if self.host_id_file else 0)
        if host_id <= 0 or host_id > MAX_HOST_ID:
            act.finish(P.EHOSTID)
            return
        new = Lockspace(self, req, host_id, self.lm.lockspace(req.ls_name, req.vg_name, lv_name, host_id))
        self.lockspaces[new.name] = new
        self.note(
            "add_lockspace %s %s host_id %d version %d", P.lock_type_name(req.lock_type), new.name, host_id, req.version
        )
        self.spawn(self.join(new, act))

    async def join(self, ls: Lockspace, act: Action) -> None:
        wait = bool(act.req.opts & Opt.WAIT)
        result = await ls.lm.prepare()
        self.figures.lm_result("prepare", result)
        if result:
            ls.step(LsEvent.PREPARE_FAILED)
            self.reap(ls)
            act.finish(result)
            return
        ls.step(LsEvent.PREPARED)
        ls.gl_enabled = ls.lm.gl_enabled
        if ls.gl_enabled:
            if not self.gl_ls_name and self.gl_type != P.LM_DLM:
                self.gl_ls_name = ls.name
                self.note("prepare_lockspace_san use global lock %s", ls.name)
            elif self.gl_ls_name and self.gl_ls_name != ls.name:
                self.dup_gl = True
        if not wait:
            act.finish(0)
        result = await ls.lm.join()
        self.figures.lm_result("join", result)
        self.figures.lockspace_started(failed=bool(result))
        if result:
            ls.step(LsEvent.JOIN_FAILED)
            self.note("add_lockspace %s failed %d", ls.name, result)
            log.error("joining lockspace %s failed: %d", ls.name, result)
            self.reap(ls)
        else:
            ls.step(LsEvent.JOINED)
            self.note("add_lockspace %s done", ls.name)
            ls.task = asyncio.ensure_future(ls.run())
        self.starts_changed.set()
        self.changed()
        if wait:
            act.finish(result)

    def reap(self, ls: Lockspace) -> None:
        if self.lockspaces.get(ls.name) is ls:
            del self.lockspaces[ls.name]
        if self.gl_ls_name == ls.name:
            self.gl_ls_name = ""
        if sum(1 for x in self.lockspaces.values() if x.gl_enabled) < 2:
            self.dup_gl = False
        self.starts_changed.set()
        self.changed()

    # -- adoption (-A 1, §8.6) -------------------------------------------------------
    def adopt_table(self) -> AdoptTable:
        """What a successor needs to adopt: the lockspaces in use, their persistent LV locks."""
        vgs = []
        for ls in self.lockspaces.values():
            if ls.state not in (Ls.PREPARING, Ls.STARTING, Ls.STARTED, Ls.KILLED):
                continue
            lvs = []
            for r in ls.resources.values():
                lk = r.persistent_lock()
                if r.rt is Rt.LV and lk is not None:
                    lvs.append(AdoptLv(r.name, r.lv_lock_args, lk.mode))
            vgs.append(
                AdoptVg(ls.vg_uuid, ls.vg_name, P.lock_type_name(ls.lock_type), ls.vg_lock_args, ls.host_id, tuple(lvs))
            )
        return AdoptTable(tuple(vgs))

    async def adopt(self, table: AdoptTable) -> int:
        """Take over what a previous instance held (§8.6): the number of LV locks adopted, or <0.

        Only lockspaces the lock manager still has for this host are started
        (their join keeps the orphan leases); each recorded persistent LV lock
        is taken over as an orphan in its recorded mode (EUCLEAN: the other
        one; ENOENT: nothing to adopt); orphan GL/VG locks are adopted (sh,
        else ex) and released at once.  Run before clients are served.
        """
        if self.lm is None:
            return P.EMANAGER
        held = set(await self.lm.lockspaces())
        adopted = 0
        failed = False
        for vg in table.vgs:
            if vg.ls_name not in held or vg.lock_type != "sanlock" or vg.ls_name in self.lockspaces:
                self.note("adopt skip %s (not held by the lock manager)", vg.ls_name)
                continue
            lv_name = lock_lv_name(vg.vg_lock_args)
            if lv_name is None or not 0 < vg.host_id <= MAX_HOST_ID:
                failed = True
                continue
            req = Request(
                "start_vg",
                Op.START,
                Rt.VG,
                vg_name=vg.vg_name,
                vg_uuid=vg.vg_uuid,
                vg_lock_args=vg.vg_lock_args,
                host_id=vg.host_id,
                lock_type=P.LM_SANLOCK,
            )
            ls = Lockspace(self, req, vg.host_id, self.lm.lockspace(vg.ls_name, vg.vg_name, lv_name, vg.host_id))
            self.lockspaces[ls.name] = ls
            self.note("adopt add_lockspace sanlock %s host_id %d", ls.name, vg.host_id)
            result = await ls.lm.prepare()
            self.figures.lm_result("prepare", result)
            if result == 0:
                ls.step(LsEvent.PREPARED)
                result = await ls.lm.join(adopt=True)
                self.figures.lm_result("join", result)
                self.figures.lockspace_started(failed=bool(result))
            if result:
                log.error("adopting lockspace %s failed: %d", ls.name, result)
                ls.step(LsEvent.PREPARE_FAILED if ls.state is Ls.PREPARING else LsEvent.JOIN_FAILED)
                self.reap(ls)
                failed = True
                continue
            ls.step(LsEvent.JOINED)
            if self.gl_type is None:
                self.gl_type = P.LM_SANLOCK  # as a start_vg naming sanlock would have set it
            ls.gl_enabled = ls.lm.gl_enabled
            if ls.gl_enabled and not self.gl_ls_name:
                self.gl_ls_name = ls.name
            for lv in vg.lvs:
                r = ls.resources[lv.lv_uuid] = Resource(lv.lv_uuid, Rt.LV, lv_lock_args=lv.lv_lock_args)
                mode = await self._adopt_one(ls, r, lv.mode)
                if mode is None:
                    del ls.resources[lv.lv_uuid]
                    continue
                r.mode = mode
                r.locks.append(Lock(mode, 0, persistent=True, since=self.figures.now()))
                adopted += 1
                self.note("adopt lock_lv %s %s %s", ls.name, lv.lv_uuid, mode.text)
            names = [(VG_NAME, Rt.VG)] + ([(GL_NAME, Rt.GL)] if ls.gl_enabled else [])
            for name, rt in names:
                r = ls.resources.get(name) or Resource(name, rt)
                mode = await self._adopt_one(ls, r, Mode.SH)
                if mode is not None:
                    if mode is Mode.EX:
                        log.warning("%s: adopted %s ex, releasing it", ls.name, name)
                    await ls.lm.release(r.lm(), None)
            ls.task = asyncio.ensure_future(ls.run())
        self.starts_changed.set()
        self.changed()
        if failed:
            self.note("adopt_locks failed, reset host")
            log.error("adopt_locks failed, reset host")
        return adopted

    async def _adopt_one(self, ls: Lockspace, r: Resource, mode: Mode) -> Mode | None:
        """Adopt one orphan lease in ``mode``, else in the other mode; None if there is none."""
        for m in (mode, Mode.SH if mode is Mode.EX else Mode.EX):
            got = await ls.lm.acquire(r.lm(), m, adopt=True)
            if got.result == 0:
                return m
            if got.result != P.EUCLEAN:
                if got.result != P.ENOENT:
                    log.error("%s: adopting %s %s: %d", ls.name, r.name, m.text, got.result)
                return None
        return None

    def forget_gl(self, ls_name: str) -> None:
        if self.gl_ls_name == ls_name:
            self.gl_ls_name = ""

    def starting(self) -> int:
        return sum(1 for ls in self.lockspaces.values() if ls.state in (Ls.PREPARING, Ls.STARTING))

    # -- the worker ----------------------------------------------------------
    async def work(self, act: Action) -> None:
        req = act.req
        if req.op is Op.START_WAIT:
            while self.starting():
                self.starts_changed.clear()
                await self.starts_changed.wait()
            act.finish(0)
            return
        async with self.worker_lock:
            if req.op is Op.RUNNING_LM:
                act.finish(P.LM_SANLOCK if await self.probe() else P.ENOLCK)
            elif req.op is Op.INIT and req.rt is Rt.VG:
                await self.init_vg(act)
            elif req.op is Op.INIT:
                await self.init_lv(act)
            elif req.op is Op.RENAME_FINAL:
                await self.rename_final(act)
            elif req.op is Op.STOP_ALL:
                act.finish(await self.stop_all(act))
            elif req.op is Op.LOCK:  # a GL request that found no GL lockspace
                await self.search_gl()
                act.searched = True
                self.dispatch(act)
            if not self.lockspaces and not self.gl_type_static:
                self.gl_type = None  # forgotten whenever the list empties (§4.8.1)

    async def probe(self) -> bool:
        self.lm_running = self.lm is not None and await self.lm.running()
        return self.lm_running

    async def search_gl(self) -> None:
        self.note("lock_gl not found for sanlock gl, searching")
        for ls in self.lockspaces.values():
            if ls.state in (Ls.STARTED, Ls.KILLED) and ls.lock_type == P.LM_SANLOCK and await ls.lm.read_gl_enabled():
                ls.gl_enabled = True
                self.gl_ls_name = ls.name
                return

    async def init_vg(self, act: Action) -> None:
        req = act.req
        if req.lock_type != P.LM_SANLOCK:
            act.finish(P.EINVAL if req.lock_type is None else P.EPROTONOSUPPORT)
            return
        name = req.ls_name
        if not name or not req.vg_lock_args:
            act.finish(P.EARGS)
            return
        if any(x[:SANLOCK_NAME_LEN] == name[:SANLOCK_NAME_LEN] for x in self.lockspaces):
            act.finish(P.EEXIST)
            return
        if self.lm is None or not await self.probe():
            act.finish(P.EMANAGER)
            return
        if req.opts & Opt.ENABLE:
            enable = True
        elif req.opts & Opt.DISABLE:
            enable = False
        else:
            enable = self.gl_type == P.LM_SANLOCK and not self.gl_ls_name and not self.lockspaces
        lv_name = req.vg_lock_args.rsplit(":", 1)[-1]
        result = await self.lm.init_vg(name, req.vg_name, lv_name, enable)
        self.figures.lm_result("init_vg", result)
        act.lm_result = result
        if result == 0:
            act.vg_lock_args = f"{LOCK_ARGS_VERSION}:{lv_name}"
            if enable:
                self.gl_ls_name = name
        act.finish(result)

    async def init_lv(self, act: Action) -> None:
        req = act.req
        act.vg_lock_args = req.vg_lock_args
        ls = self.lockspaces.get(req.ls_name)
        if ls is not None:
            lock_type, lsm, hint = ls.lock_type, ls.lm, ls.free_hint
        else:
            lv_name = lock_lv_name(req.vg_lock_args)
            if self.lm is None or lv_name is None:
                act.finish(P.EARGS)
                return
            lock_type = req.lock_type if req.lock_type is not None else P.LM_NONE
            lsm, hint = self.lm.lockspace(req.ls_name, req.vg_name, lv_name, self.host_id), 0
        if req.lock_type is not None and req.lock_type != lock_type:
            act.finish(P.EINVAL)
            return
        result, args = await lsm.init_lv(req.lv_uuid, hint)
        self.figures.lm_result("init_lv", result)
        act.lm_result = result
        act.lv_lock_args = args
        act.finish(result)

    async def rename_final(self, act: Action) -> None:
        req = act.req
        lv_name = lock_lv_name(req.vg_lock_args)
        if self.lm is None or lv_name is None:
            act.finish(P.EARGS)
            return
        # the old name is not in the request: the lease LV (renamed with the VG) holds it
        result = await self.lm.rename_vg(req.ls_name, req.vg_name, lv_name)
        self.figures.lm_result("rename_vg", result)
        act.finish(result)

    async def stop_all(self, act: Action) -> int:
        force = bool(act.req.opts & Opt.FORCE)
        busy = 0
        for ls in list(self.lockspaces.values()):
            if ls.state not in (Ls.STARTED, Ls.KILLED) or ls.stop_action is not None:
                continue
            if ls.holds_locks(lv_only=False) and not force:
                busy += 1
                continue
            stop = Action(self, Request("stop_vg", Op.STOP, Rt.VG, vg_name=ls.vg_name), INTERNAL_CLIENT)
            ls.begin_stop(stop, "stop")
            ls.wake.set()
        if act.req.opts & Opt.WAIT:
            while any(ls.stop_action is not None for ls in self.lockspaces.values()):
                await asyncio.gather(*(ls.idle.wait() for ls in self.lockspaces.values() if ls.stop_action is not None))
            return busy
        stopping = sum(1 for ls in self.lockspaces.values() if ls.stop_action is not None)
        return busy + stopping

    # -- replies ----------------------------------------------------------------
    def replied(self, act: Action, result: int) -> None:
        if act.client_id != INTERNAL_CLIENT:  # a lockspace stop of our own is no request
            req = act.req
            self.figures.replied(req.op, req.rt, req.mode, result, self.figures.now() - act.arrived)
        if self.on_reply is not None:
            self.on_reply(act, result)
        self.changed()

    def changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def result_flags(self, act: Action, result: int) -> str:
        """§1.4, in order, parts concatenated without separators."""
        flags = ""
        if result == P.ENOLS:
            if not any(ls.state in LISTED for ls in self.lockspaces.values()):
                flags += "NO_LOCKSPACES,"
            if self.gl_type == P.LM_SANLOCK:
                if not self.gl_ls_name:
                    flags += "NO_GL_LS,"
            elif self.gl_type is None:
                flags += "NO_GL_LS" if self.lm_running else "NO_GL_LS,NO_LM"
        if act.dup_gl:
            flags += "DUP_GL_LS,"
        if act.warn_gl_removed or self.gl_removed:
            flags += "WARN_GL_REMOVED,"
        return flags or "none"

    def reply_text(self, act: Action, result: int) -> str:
        req = act.req
        flags = self.result_flags(act, result)
        if req.op is Op.INIT:
            return P.init_reply(result, act.lm_result, act.vg_lock_args, act.lv_lock_args, flags)
        return P.standard_reply(int(req.op), P.lock_type_name(act.lock_type), result, act.lm_result, flags)

    # -- lvmetad ------------------------------------------------------------------
    async def invalidate(self, ls: Lockspace, rt: Rt, version: int) -> None:
        """Tell the local lvmetad its copy is stale, and wait for its answer (§5.4)."""
        try:
            if rt is Rt.GL:
                request = "set_global_info"
                self.figures.invalidation(request)
                self.note("res_lock set lvmetad global invalid")
                delivered = await self.metad.set_global_invalid()
            else:
                request = "set_vg_info"
                self.figures.invalidation(request)
                self.note("res_lock set lvmetad vg %s version %d", ls.vg_name, version)
                delivered = await self.metad.set_vg_info(ls.vg_uuid or "none", ls.vg_name, version)
            if delivered is False:
                self.figures.invalidation(request, failed=True)
        except Exception as exc:  # any lvmetad trouble is logged; the lock still succeeds
            self.figures.invalidation(request, failed=True)
            log.warning("invalidating lvmetad failed: %s", exc)

    # -- introspection ----------------------------------------------------------
    def note(self, fmt: str, *args: object) -> None:
        """One line of the in-memory log that ``dump`` returns (§3.19)."""
        text = fmt % args if args else fmt
        log.debug("%s", text)
        self.log_ring.append(f"{int(self.clock())} {text}\n")
        if len(self.log_ring) > 8192:
            del self.log_ring[:1024]

    def dump_text(self) -> str:
        return "".join(self.log_ring)

    def info_text(self, clients: dict[int, tuple[int, int]] | None = None) -> str:
        """The ``info`` text: one line per object (§3.19)."""
        lines = ["info=structs unused_action_count=0 unused_client_count=0 unused_resource_count=0 unused_lock_count=0"]
        for client_id, (pid, fd) in sorted((clients or {}).items()):
            name = self.client_names.get(client_id, ".")
            lines.append(f"info=client pid={pid} fd={fd} pi=0 id={client_id} name={name}")
        for ls in self.lockspaces.values():
            st = ls.state
            lines.append(
                f"info=ls ls_name={ls.name} vg_name={ls.vg_name} vg_uuid={ls.vg_uuid or '.'} vg_sysid=. "
                f"vg_args={ls.vg_lock_args} lm_type={P.lock_type_name(ls.lock_type)} host_id={ls.host_id} "
                f"create_fail={int(st is Ls.FAILED)} create_done={int(st not in (Ls.PREPARING, Ls.STARTING))} "
                f"thread_work={int(not ls.idle.is_set())} thread_stop={int(ls.stop_action is not None)} "
                f"thread_done={int(st is Ls.DONE)} kill_vg={int(st is Ls.KILLED)} drop_vg=0 "
                f"sanlock_gl_enabled={int(ls.gl_enabled)}"
            )
            for act in ls.incoming:
                lines.append(_action_line("ls_action", act))
            for r in ls.resources.values():
                sh = len(r.locks) if r.mode is Mode.SH else 0
                lines.append(
                    f"info=r name={r.name} type={r.rt.value} mode={r.mode.text} sh_count={sh} version={r.known.r_version}"
                )
                for lk in r.locks:
                    lines.append(
                        f"info=lk mode={lk.mode.text} version={lk.version} flags=0x{int(lk.persistent):x} client_id={lk.client_id}"
                    )
                for act in r.queue:
                    lines.append(_action_line("r_action", act))
        f = self.figures
        lines.append(
            f"info=stats requests={sum(f.requests.values())} granted={f.granted} local_waits={f.local_waits} "
            f"retries={f.retries} refused_by_other_host={f.refused_by_other_host} "
            f"invalidations_vg={f.invalidations['set_vg_info']} "
            f"invalidations_global={f.invalidations['set_global_info']}"
        )
        return "\n".join(lines) + "\n"


def _action_line(kind: str, act: Action) -> str:
    req = act.req
    return (
        f"info={kind} client_id={act.client_id} flags=0x0 version={req.version} op={P.OP_NAMES.get(req.op, 'op_unknown')} "
        f"rt={req.rt.value if req.rt else '.'} mode={req.mode.text} lm_type={P.lock_type_name(act.lock_type)} "
        f"result={act.result or 0} lm_rv={act.lm_result}"
    )
