/*
 * refresh.pml: a Promela model of credhelper's fleet refresh protocol
 * (DESIGN.md section 5; refresh/engine.go, protocol.go, claim.go,
 * heal.go, journal.go), checked by spin. README.md beside it lists every
 * process's steps in order (the spec the Go code follows), what is left
 * out, and what spin found.
 *
 * Three instances share one credential in a store (a versioned register
 * with compare-and-swap) and refresh it through an issuer whose refresh
 * tokens are one-time: presenting a spent token revokes the whole family
 * (as issuers/dev does). Time is abstract: a clock process ticks when
 * every running instance waits, leases age by ticks, and two hosts'
 * clocks differ by SK ticks. Any instance may crash before any step
 * (bounded): its memory is lost, its journal and the lease it wrote
 * survive, and it restarts as a new holder. The store may fail any
 * compare-and-swap (bounded), land one whose caller saw an error
 * (LOSTACK), or be cut off from one instance for a while (MAXOUT,
 * OUTMAX). The issuer may refuse a call before it is sent, drop it, or
 * lose its answer (IFAULTS).
 *
 * Invariants (DESIGN.md "Invariants"); every assert carries its tag:
 *   I1  issue(): a token is presented by one holder (its retries
 *       included); another holder only after that one died, at most one
 *       other, and never by a holder the issuer refused it.
 *   I2  commit: a pair is journaled before any use; Final(): every pair
 *       received is committed, superseded or reported orphaned, and every
 *       journal is empty at the end.
 *   I3  publish(): one pair per generation across the fleet.
 *   I4  no invalid end state (nobody blocked for ever); LIVE: ltl done.
 *   I5  setrec(): the stored generation never decreases and a generation
 *       never names two pairs; publish(): an instance never goes back.
 *   BROKEN  setrec(): a lineage marked broken is revived only by a heal.
 *   KEEP    (scenarios) the lineage is never lost.
 * Progress (LIVE): ltl done, commits, progress at the end of this file.
 *
 * Steps name, in a comment, the Go function they model.
 *
 * Switches (-D...):
 *   features   RENEWAL, INTROSPECTION, HEALING
 *   scenarios  SLOWISS (every answer takes SLOWLAT ticks), KEEP,
 *              SKEWAHEAD (host 1 ahead only), LOSTACK
 *   main       GO_MAIN (all of:) GO_MARK_FEW, GO_HANDBACK (GRACE),
 *              GO_NORENEW_COMMIT: refresh/ in main where it differs from
 *              README.md's steps; GO_MARK_ONCE, GO_ASK_PRESENTS,
 *              GO_ASK_TAKEOVER_ONLY, GO_HEAL_SERVE, GO_CANCEL_ON_LOST:
 *              main before e951059 (found here, fixed there)
 *   mutants    MUT_NOJOURNAL, MUT_NOCLAIM, MUT_NOCOMMITCAS,
 *              MUT_NOLEASEWAIT, MUT_NOSKEW, MUT_NOREPLAY,
 *              MUT_NORENEWSTOP, MUT_NOINTROWAIT, MUT_NOTAKEOVER
 *   bounds     MAXGEN, MAXCRASH, SFAULTS, IFAULTS, MAXOUT, OUTMAX, MAXFAM
 *   LIVE       compile the LTL claims (run pan -a -f -N claim)
 */

/* ---------- bounds and switches ---------- */
#ifndef MAXGEN
#define MAXGEN 2	/* instances stop once generation MAXGEN is stored */
#endif
#ifndef MAXCRASH
#define MAXCRASH 1	/* crashes in a run */
#endif
#ifndef SFAULTS
#define SFAULTS 2	/* store operations that fail (transient errors) */
#endif
#ifndef IFAULTS
#define IFAULTS 1	/* issuer calls that fail (not delivered, dropped, answer lost) */
#endif
#ifndef MAXOUT
#define MAXOUT 0	/* partitions: one instance cut off from the store */
#endif
#ifndef OUTMAX
#define OUTMAX 0	/* longest partition, in ticks */
#endif
#ifndef MAXFAM
#define MAXFAM 1	/* token families the issuer may mint (HEALING mints more) */
#endif
#ifndef LOSTACK
#define LOSTACK 0
#endif
#ifndef RENEWAL
#define RENEWAL 0
#endif
#ifndef INTROSPECTION
#define INTROSPECTION 0
#endif
#ifndef HEALING
#define HEALING 0
#endif
#ifndef SLOWISS
#define SLOWISS 0
#endif
#ifndef KEEP
#define KEEP 0
#endif
#ifndef LIVE
#define LIVE 0
#endif
#ifndef SKEWAHEAD
#define SKEWAHEAD 0
#endif
/* refresh/ in main (e951059) as it is, where it differs from README.md's steps */
#ifndef GO_MAIN
#define GO_MAIN 0
#endif
#ifndef GO_MARK_FEW
#define GO_MARK_FEW GO_MAIN	/* writeBroken(): a few quick attempts, then give up */
#endif
#ifndef GO_HANDBACK
#define GO_HANDBACK GO_MAIN	/* awaitPredecessor(): hand the record back, mark broken only after a grace */
#endif
#ifndef GO_NORENEW_COMMIT
#define GO_NORENEW_COMMIT GO_MAIN	/* journalAndCommit(): renewal stops once the pair is journaled */
#endif
/* main before e951059 (found by this model, fixed there; regression mutants now) */
#ifndef GO_MARK_ONCE
#define GO_MARK_ONCE 0	/* rejected(): one broken-mark attempt, no memory of the rejection */
#endif
#ifndef GO_ASK_PRESENTS
#define GO_ASK_PRESENTS 0	/* spentElsewhere(): a failed question presents the token */
#endif
#ifndef GO_ASK_TAKEOVER_ONLY
#define GO_ASK_TAKEOVER_ONLY 0	/* spend(): ask only when taking over another holder's lease */
#endif
#ifndef GO_HEAL_SERVE
#define GO_HEAL_SERVE 0	/* commitPending(): a deferred heal's pair is served from memory */
#endif
#ifndef GO_CANCEL_ON_LOST
#define GO_CANCEL_ON_LOST 0	/* claim.lose(): a lost lease cancels the issuer call in flight */
#endif
#ifndef GRACE
#define GRACE 1	/* GO_HANDBACK: hand-backs before the lineage is marked broken (each one lease + skew) */
#endif

/* ---------- time, in ticks ---------- */
#define L	4	/* Options.LeaseDuration */
#define A	1	/* Options.ClockSkew: the allowance */
#define SK	1	/* real clock difference between the two hosts (<= A) */
#define TISS	1	/* Options.IssuerTimeout (two calls fit in the lease) */
#define RENEW_AT 1	/* RENEWAL: renew a third of the way into the lease */
#define CEIL	8	/* RENEWAL: hard ceiling on one issuer call */
#define SLOWLAT	6	/* SLOWISS: issuer latency, past lease + skew */
#if RENEWAL
#define IWAIT	(L+A)	/* INTROSPECTION: a taker's wait for the holder's commit, renewing its claim */
#else
#define IWAIT	3	/* INTROSPECTION: a taker's wait for the holder's commit (inside its own lease) */
#endif
#define LSAT	(L+A+SK)	/* lease ages saturate here: expired for everyone */
#define ESAT	8	/* call timers saturate here (>= CEIL, SLOWLAT, IWAIT) */

#define N	3	/* instances: 0 and 1 on host 0, 2 on host 1 */
#define NG	(MAXGEN+2)	/* generations 0..MAXGEN+1 (a heal skips one) */
#define NT	(MAXFAM*NG)	/* tokens (= pairs): family x generation */
#define TOK(fa,ge) ((fa)*NG+(ge))
#define NOPAIR	255

/* store operation results */
#define S_OK		1
#define S_CONFLICT	2
#define S_FAIL		3	/* transient error, not applied */
#define S_LOST		4	/* applied, but the caller saw an error */

/* issuer call results and answer fates */
#define R_OK	1
#define R_REJ	2	/* ErrRefreshRejected */
#define R_ND	3	/* ErrNotDelivered: certainly not delivered */
#define R_MAYBE	4	/* timeout or reset after the request was sent */
#define F_NOW	1	/* the answer is there at once */
#define F_SLOW	2	/* the answer comes after SLOWLAT ticks */
#define F_NONE	3	/* no answer ever (dropped, or answer lost) */

/* ghost status of each pair the issuer mints (I2) */
#define P_MINTED	1	/* issued; the answer may never have arrived */
#define P_JOURNALED	2	/* received; the journal step is done */
#define P_COMMITTED	3
#define P_ORPHANED	4	/* reported orphaned */
#define P_SUPERSEDED	5	/* discarded from a journal: a newer generation is stored */

/* ---------- the store: one record ---------- */
byte s_ver = 1;		/* version; every successful CompareAndSwap bumps it */
byte s_gen;		/* the pair's generation ... */
byte s_fam;		/* ... and token family */
byte s_lh;		/* lease holder (HID), 0: no lease */
byte s_lage;		/* lease age, by the holder's clock */
bool s_brk;		/* Broken: the lineage is marked broken at s_gen */

/* ---------- the issuer ---------- */
bit spent[NT];		/* refresh token of pair tk spent */
bit revoked[MAXFAM];	/* family revoked by reuse detection */
byte nfam = 1;		/* families minted (HEALING bootstraps new ones) */

/* ---------- journals: one file per holder, on its host's disk ----------
   Slot x + N*(incarnation % 2) is instance x's current holder's file, so
   a restarted process never overwrites its predecessor's entry. */
#define NJ	(2*N)
#define JS(x)	((x) + N*(inc[x] % 2))
byte j_gen[NJ];		/* 0: empty; else the journaled pair's generation */
byte j_fam[NJ];
byte j_sg[NJ];		/* generation and ... */
byte j_sf[NJ];		/* ... family of the spent pair */
byte j_ver[NJ];		/* the claimed version to commit against */
bit  j_heal[NJ];		/* a heal's pair */
byte j_lock[NJ];		/* HID holding the entry's flock, 0: none */

/* ---------- instances ---------- */
bool up[N];		/* running (not crashed) */
bool kill[N];		/* crash requested: the instance stops at its next step */
bool fin[N];		/* finished (generation MAXGEN stored, or lineage lost) */
bool wt[N];		/* waiting for the next tick; the clock ticks only when all wait */
byte inc[N];		/* incarnation: a restarted process is a new holder */
byte el[N];		/* ticks since the current timed wait began */
bit  eon[N];		/* el[] counts */
#if RENEWAL
byte lt[N];		/* ticks since this instance's last claim or renewal */
bit  hold[N];		/* lt[] counts: the instance holds a lease */
#endif
bool cut[N];		/* cut off from the store */
byte hoff[2];		/* host clock offsets; hoff[0] = SK, hoff[1] = 0 or 2*SK */
byte crashes, sfaults, ifaults, outs, oage;
byte handbacks;		/* GO_HANDBACK: takers that gave up waiting and handed the record back */
/* scratch, only ever live inside one atomic step: not part of the state */
hidden byte rs, tk, jk;

/* ---------- ghosts ---------- */
byte pfirst[NT];	/* I1: first holder that presented token tk */
byte pextra[NT];	/* I1: the one other holder that presented it after the first died */
byte prej[NT];		/* I1: the last holder the issuer refused token t */
byte pst[NT];		/* I2: fate of pair tk */
byte srv[NG];		/* I3: 1 + family of the pair served under each generation */

#define HID(x)		(1 + (x) + N*inc[x])
#define HINST(h)	(((h)-1) % N)
#define HINC(h)		(((h)-1) / N)
#define ALIVE(h)	(up[HINST(h)] && inc[HINST(h)] == HINC(h))
#define HOST(x)		((x) == 2)
#define OFF(x)		hoff[HOST(x)]
#if MUT_NOSKEW
#define ALLOW 0
#else
#define ALLOW A
#endif
/* refresh/protocol.go: (*Engine).refresh: a lease counts as expired only
   ClockSkew after its expiry, by this instance's clock */
#if MUT_NOTAKEOVER
#define EXPIRED_FOR(x)	false	/* mutant: wait for any lease forever (a liveness bug) */
#else
#define EXPIRED_FOR(x)	(s_lage + OFF(x) >= L + ALLOW + OFF(HINST(s_lh)))
#endif
/* a journal entry on x's host whose owner is dead (its flock is free) */
#define DEAD_ENTRY(x,jk)	(HOST((jk) % N) == HOST(x) && j_gen[jk] != 0 && j_lock[jk] == 0)

/* ---------- store operations (each one atomic step of its caller) ---------- */

/* provider.Backend.Load. It fails only when the instance is cut off: a
   transient Load error only delays its caller, and a failed
   CompareAndSwap (SFAULTS) already delays every step where timing
   matters (claim, commit, replay, the broken mark) */
inline sread(rs) {
	rs = (cut[i] -> S_FAIL : S_OK)
}

/* provider.Backend.CompareAndSwap: rs only; the caller writes on S_OK or S_LOST */
inline scas(expv, rs) {
	if
	:: cut[i] -> rs = S_FAIL
	:: !cut[i] && sfaults < SFAULTS -> sfaults++; rs = S_FAIL
#if LOSTACK
	:: !cut[i] && sfaults < SFAULTS && s_ver == expv -> sfaults++; rs = S_LOST
#endif
	:: !cut[i] && s_ver == expv -> rs = S_OK
	:: !cut[i] && s_ver != expv -> rs = S_CONFLICT
	fi
}

/* the write of a successful CompareAndSwap; I5 and one pair per generation */
inline setrec(ng, nf, nlh, nbrk) {
	assert(ng > s_gen || (ng == s_gen && nf == s_fam));	/* I5: generations only grow; one pair each */
	assert(!s_brk || nbrk || ng == s_gen + 2);	/* BROKEN: a lineage marked broken is never revived, only healed */
	printf("EV %d(h%d) writes v%d: g%d f%d lease h%d broken %d\n", i, HID(i), s_ver+1, ng, nf, nlh, nbrk);
	s_gen = ng; s_fam = nf; s_lh = nlh; s_lage = 0; s_brk = nbrk;
	assert(s_ver < 250);	/* MODEL: versions fit a byte */
	s_ver++
}

/* ---------- the issuer ---------- */

/* issuers/dev: one-time refresh tokens with reuse detection. tk is the
   presented pair; r gets the answer. */
inline issue(tk) {
	printf("EV %d(h%d) presents token f%d g%d (spent %d revoked %d)\n", i, HID(i), tk / NG, tk % NG, spent[tk], revoked[tk / NG]);
	/* I1: one holder presents a token; once it died, one more holder may */
	assert(prej[tk] != HID(i));	/* I1: never again after the issuer refused it */
	if
	:: pfirst[tk] == 0 -> pfirst[tk] = HID(i)
	:: pfirst[tk] == HID(i) -> skip	/* the holder's own retries */
	:: else ->
		assert(!ALIVE(pfirst[tk]));	/* I1: taken for dead while alive */
		assert(pextra[tk] == 0 || pextra[tk] == HID(i));	/* I1: at most one more holder */
		pextra[tk] = HID(i)
	fi;
	if
	:: revoked[tk / NG] -> r = R_REJ
	:: !revoked[tk / NG] && spent[tk] -> r = R_REJ; revoked[tk / NG] = 1;
		assert(!KEEP)	/* KEEP: the lineage is lost */
	:: !revoked[tk / NG] && !spent[tk] -> r = R_OK; spent[tk] = 1; pst[tk+1] = P_MINTED
	fi
}

/* provider.Issuer.Refresh as one presentation: the issuer's side happens
   now, the answer comes now, later, or never */
inline present(tk) {
	if
	:: ifaults < IFAULTS -> ifaults++; r = R_ND; rfate = F_NOW	/* refused before sending */
	:: ifaults < IFAULTS -> ifaults++; r = R_MAYBE; rfate = F_NONE	/* sent, never processed */
	:: ifaults < IFAULTS -> ifaults++; issue(tk); r = R_MAYBE; rfate = F_NONE	/* answer lost */
	:: true -> issue(tk); rfate = (SLOWISS -> F_SLOW : F_NOW)
	fi
}

/* ---------- instance memory and publishing ---------- */

/* refresh/engine.go: (*Engine).publish, (*Engine).adopt; I3, I5 */
inline publish(ng, nf) {
	assert(cg == NOPAIR || ng >= cg);	/* I5: an instance never goes back */
	if
	:: srv[ng] == 0 -> srv[ng] = nf + 1
	:: else -> assert(srv[ng] == nf + 1)	/* I3: one pair per generation */
	fi;
	cg = ng
}

#if RENEWAL
/* RENEWAL: refresh/claim.go: (*claim).renew -> (*claim).extend: extend the lease by
   CompareAndSwap while the issuer call or the commit is in flight */
inline renew() {
	if
	:: hold[i] && !lost && lt[i] >= RENEW_AT ->
		scas(myv, rs);
		if
		:: rs == S_OK ->
			setrec(s_gen, s_fam, HID(i), s_brk); lt[i] = 0;
			if :: pg != 0 && pv == myv -> pv = s_ver :: else fi;
			myv = s_ver
		:: rs == S_LOST -> setrec(s_gen, s_fam, HID(i), s_brk); lt[i] = 0; if :: pg != 0 && pv == myv -> pv = s_ver :: else fi; myv = s_ver	/* (*claim).recover: it landed */
		:: rs == S_CONFLICT -> lost = true	/* taken over: stop presenting */
		:: rs == S_FAIL -> skip	/* the lease keeps ageing */
		fi
	:: else -> skip
	fi
}
/* a holder presents only while its lease is its own by its own clock */
#if MUT_NORENEWSTOP
#define CAN_PRESENT true	/* mutant: present again although the lease could not be renewed */
#else
#define CAN_PRESENT (hold[i] && !lost && lt[i] < L)
#endif
#else
#define CAN_PRESENT true
#endif

inline drop_lease() {
	myv = 0;
#if RENEWAL
	hold[i] = 0; lt[i] = 0; lost = false
#else
	skip
#endif
}

/* the model's own bookkeeping: forget locals no later step reads, so
   that states differing only in them are one state */
inline forget() {
	g = 0; f = 0; v = 0; r = 0; rfate = 0; tries = 0; took = false; pred = 0
}

/* (*Engine).commitPending: report the pending pair orphaned, clearPending */
inline orphan() {
	pst[TOK(pf, pg)] = P_ORPHANED;
	if :: pk != NOPAIR -> j_gen[pk] = 0; j_lock[pk] = 0 :: else fi;
	pg = 0; pk = NOPAIR; drop_lease()
}

/* ---------- an instance: one process, restarted after each crash ---------- */
proctype Inst(byte i) {
	byte cg;		/* generation of the published pair */
	byte g, f, v;		/* the loaded record */
	byte pg, pf, psg, psf, pv, pk;	/* pending commit (pg 0: none) of the pair spent at (psg, psf); pk: its journal slot */
	bool ph;		/* the pending pair is a heal's */
	byte myv;		/* version written by this instance's last claim or renewal */
	bool rdone;		/* replayOnce done */
	bool took;		/* this claim takes over an expired lease */
	bool lost;		/* RENEWAL: the lease was taken over; stop presenting */
	byte pred;		/* INTROSPECTION: the holder whose expired lease this claim took over */
	byte r, rfate, tries;

restart:
	atomic {
		cg = NOPAIR; pg = 0; pk = NOPAIR; ph = false; myv = 0; rdone = false;
		took = false; lost = false; pred = 0; tries = 0; g = 0; f = 0; v = 0;
		pf = 0; psg = 0; psf = 0; pv = 0; r = 0; rfate = 0
	};
	{
	skip;
load:	/* refresh/protocol.go: (*Engine).refresh: finishPending, replayOnce, load, adopt, wait for a live lease */
	atomic {
		eon[i] = 0; el[i] = 0;
		if
		:: pg != 0 -> goto commit	/* (*Engine).finishPending */
		:: else
		fi;
#if MUT_NOREPLAY
		rdone = true;
#endif
		if
		:: !rdone ->	/* refresh/journal.go: (*Engine).replayOnce */
			jk = 0;
			do
			:: jk < NJ && !DEAD_ENTRY(i, jk) -> jk++
			:: jk < NJ && DEAD_ENTRY(i, jk) -> goto replay
			:: jk == NJ -> break
			od;
			rdone = true
		:: else
		fi;
		sread(rs);
		if
		:: rs != S_OK -> goto backoff
		:: else
		fi;
		g = s_gen; f = s_fam; v = s_ver;
		if
		:: s_brk -> goto broken	/* ErrLineageBroken */
		:: else
		fi;
		if
		:: cg == NOPAIR || g > cg -> publish(g, f)	/* (*Engine).adopt */
		:: else
		fi;
		if
		:: g >= MAXGEN -> goto finish	/* model bound: enough generations */
		:: else
		fi;
		took = false;
		if
		:: s_lh != 0 && s_lh != HID(i) ->
#if !MUT_NOREPLAY
			/* (*Engine).replayJournals: a dead neighbour's journaled pair */
			jk = 0;
			do
			:: jk < NJ && !DEAD_ENTRY(i, jk) -> jk++
			:: jk < NJ && DEAD_ENTRY(i, jk) -> goto replay
			:: jk == NJ -> break
			od;
#endif
#if MUT_NOLEASEWAIT
			took = true; pred = s_lh
#else
			if
			:: !EXPIRED_FOR(i) -> forget(); wt[i] = 1; goto lwait	/* step 3: wait for a live lease */
			:: else -> took = true; pred = s_lh	/* an expired lease: the token may have been presented */
			fi
#endif
#if !GO_ASK_TAKEOVER_ONLY
		:: s_lh == HID(i) -> took = true; pred = s_lh	/* our own lease from an unfinished flight: ask too */
#endif
		:: else
		fi
	};

claim:	/* step 4: refresh/protocol.go: (*Engine).refresh claim: CompareAndSwap a lease naming this instance */
	atomic {
#if MUT_NOCLAIM
		myv = v;
#else
		scas(v, rs);
		if
		:: rs == S_OK ->
			setrec(g, f, HID(i), false); myv = s_ver;
#if RENEWAL
			hold[i] = 1; lt[i] = 0; lost = false;
#endif
		:: rs == S_LOST -> setrec(g, f, HID(i), false); goto backoff
		:: rs == S_CONFLICT -> goto load	/* claim lost: go to 2 */
		:: rs == S_FAIL -> goto backoff
		fi;
#endif
		tries = 0;
#if INTROSPECTION
		if
		:: took -> goto ask
		:: else
		fi
#endif
	};

spend:	/* step 5: refresh/protocol.go: (*Engine).spend -> (*Engine).callIssuer */
	atomic {
		took = false; v = 0; pred = 0;
		tk = TOK(f, g);
		present(tk);
		el[i] = 0; eon[i] = 1;
		if
		:: rfate == F_NOW -> skip	/* the answer is here: handle it before time moves */
		:: else -> wt[i] = 1; goto callwait
		fi
	};

answer:	/* (*Engine).spend: the issuer's answer; step 6: journal.write before anything can lose the pair */
	atomic {
		eon[i] = 0; el[i] = 0; rs = r; r = 0; rfate = 0;
		if
		:: rs == R_OK ->
			pg = g + 1; pf = f; psg = g; psf = f; ph = false; pv = myv; pk = JS(i);
			assert(j_gen[pk] == 0 || s_gen >= j_gen[pk]);	/* MODEL: the slot is free or superseded */
#if !MUT_NOJOURNAL
			j_gen[pk] = pg; j_fam[pk] = pf; j_sg[pk] = psg; j_sf[pk] = psf; j_ver[pk] = pv; j_heal[pk] = 0; j_lock[pk] = HID(i);
#else
			pk = NOPAIR;
#endif
			pst[TOK(pf, pg)] = P_JOURNALED; forget();
			goto commit
		:: rs == R_REJ -> prej[TOK(f, g)] = HID(i); tries = 0; goto rejected
		:: rs == R_ND && tries == 0 -> goto release	/* certainly not delivered: the token is unspent */
		:: rs == R_ND && tries > 0 -> goto backoff	/* the first call may have spent it: keep the lease */
		:: rs == R_MAYBE ->
			tries++;
			if
			:: tries == 1 && CAN_PRESENT -> goto spend	/* the holder alone retries at once, same token */
			:: else -> goto backoff	/* keep the lease; retry after a backoff (asking first: the lease is on the record) */
			fi
		fi
	};

callwait:	/* (*Engine).callIssuer: the call is in flight */
	atomic {
		!wt[i] ->
#if RENEWAL
		renew();
		if
#if GO_CANCEL_ON_LOST
		:: lost || lt[i] >= L -> r = R_MAYBE; goto answer	/* main: the lease is lost: the call is cancelled */
#endif
		:: rfate == F_SLOW && el[i] >= SLOWLAT -> goto answer
		:: el[i] >= CEIL -> r = R_MAYBE; goto answer	/* the hard ceiling */
		:: else -> wt[i] = 1; goto callwait	/* not cut off while the lease is renewable */
		fi
#else
		if
		:: rfate == F_SLOW && el[i] >= SLOWLAT -> goto answer
		:: el[i] >= TISS -> r = R_MAYBE; goto answer	/* IssuerTimeout: maybe delivered */
		:: else -> wt[i] = 1; goto callwait
		fi
#endif
	};

commit:	/* step 7: refresh/protocol.go: (*Engine).commitPending: CompareAndSwap against the claimed version */
	atomic {
		eon[i] = 0; el[i] = 0;
		assert(pst[TOK(pf, pg)] >= P_JOURNALED);	/* I2: journaled before it is used */
#if MUT_NOCOMMITCAS
		scas(s_ver, rs);
#else
		scas(pv, rs);
#endif
		if
		:: rs == S_OK ->
			setrec(pg, pf, 0, false); pst[TOK(pf, pg)] = P_COMMITTED; goto committed
		:: rs == S_LOST ->
			setrec(pg, pf, 0, false); pst[TOK(pf, pg)] = P_COMMITTED; goto deferred
		:: rs == S_FAIL -> goto deferred
		:: rs == S_CONFLICT ->	/* load again */
			sread(rs);
			if
			:: rs != S_OK -> goto deferred
			:: else
			fi;
			if
			:: s_gen == pg && s_fam == pf -> goto committed	/* our own write landed: its answer was lost */
			:: else
			fi;
			if
			:: !ph && s_brk && s_gen == psg && s_fam == psf ->
				/* marked broken meanwhile: never revive it; report ours orphaned */
				orphan(); goto broken
			:: else
			fi;
			if
			:: s_gen == psg && s_fam == psf ->
				/* still the pair we spent, under someone else's claim: ours is its successor */
				pv = s_ver; goto commit
			:: else ->
				/* a newer generation won (or an out-of-band pair): ours is orphaned; adopt */
				orphan();
				if :: s_brk -> goto broken :: else fi;
				publish(s_gen, s_fam); goto load
			fi
		fi
	};

deferred:	/* (*Engine).commitPending transient error: serve from memory, retry every quarter lease */
	atomic {
		/* a heal's pair only once committed: two bootstraps may both succeed (I3) */
#if GO_HEAL_SERVE
		publish(pg, pf);
#else
		if :: !ph -> publish(pg, pf) :: else fi;
#endif
		wt[i] = 1
	};
dwait:	/* (*Engine).retryCommitLater: the background retry's timer */
	atomic {
		!wt[i] ->
#if RENEWAL && !GO_NORENEW_COMMIT
		renew();
#endif
		goto commit
	};

committed:	/* step 8: (*Engine).clearPending (journal entry removed), publish */
	atomic {
		publish(pg, pf);
		if :: pk != NOPAIR -> j_gen[pk] = 0; j_lock[pk] = 0 :: else fi;
		pg = 0; pk = NOPAIR; drop_lease();
		goto load
	};

release:	/* refresh/protocol.go: (*Engine).release: drop the unspent claim */
	atomic {
		scas(myv, rs);
		if
		:: rs == S_OK || rs == S_LOST -> setrec(s_gen, s_fam, 0, false)
		:: else	/* it will expire */
		fi;
		drop_lease(); goto backoff
	};

rejected:	/* refresh/protocol.go: (*Engine).rejected -> (*Engine).markBroken: adopt a newer generation, or mark the lineage broken */
	atomic {
		eon[i] = 0;
		sread(rs);
		if
		:: rs != S_OK ->
#if GO_MARK_ONCE
			drop_lease(); goto backoff	/* main before e951059: the mark is not retried */
#elif GO_MARK_FEW
			drop_lease(); goto finish	/* main: the quick attempts all fail; it gives up */
#else
			wt[i] = 1; goto rjwait	/* retry the mark; never present this token again */
#endif
		:: else
		fi;
		if
		:: s_gen > g || s_fam != f -> drop_lease(); if :: s_brk -> goto broken :: else fi; publish(s_gen, s_fam); goto load
		:: s_gen == g && s_fam == f && s_brk -> drop_lease(); goto broken
		:: s_gen == g && s_fam == f && !s_brk && s_lh != 0 && s_lh != HID(i) -> drop_lease(); goto broken	/* someone else's claim */
		:: else -> skip
		fi;
		scas(s_ver, rs);	/* mark broken: (*Engine).writeBroken */
		if
		:: rs == S_OK || rs == S_LOST -> setrec(g, f, 0, true); drop_lease(); goto broken
		:: else ->
#if GO_MARK_ONCE
			drop_lease(); goto backoff
#elif GO_MARK_FEW
			if
			:: cut[i] -> drop_lease(); goto finish	/* main: a few quick attempts, then it gives up (and never presents the token again) */
			:: else -> goto rejected	/* main: tried again at once */
			fi
#else
			wt[i] = 1; goto rjwait
#endif
		fi
	};
rjwait:	/* (*Engine).rejected: retry the broken mark after a tick */
	atomic { !wt[i] -> goto rejected };

#if INTROSPECTION
ask:	/* INTROSPECTION: refresh/protocol.go: (*Engine).spentElsewhere: provider.Introspector reports whether the token is active */
	atomic {
		if
#if GO_ASK_PRESENTS
		:: ifaults < IFAULTS -> ifaults++; took = false; goto spend	/* main before e951059: cannot ask: present as before */
#else
		:: ifaults < IFAULTS -> ifaults++;	/* cannot ask: (*Engine).handBack: put the record back as loaded, present nothing */
			scas(myv, rs);
			if
			:: rs == S_OK || rs == S_LOST -> setrec(g, f, pred, false); s_lage = LSAT
			:: else	/* our own lease stays: the next claim asks too */
			fi;
			eon[i] = 0; drop_lease(); goto backoff
#endif
		:: else
		fi;
		took = false;
#if !MUT_NOINTROWAIT
		if
		:: spent[TOK(f, g)] || revoked[f] ->
			/* spent: its holder got an answer; wait for its commit or its journal */
			el[i] = 0; eon[i] = 1; wt[i] = 1; goto iwait
		:: else
		fi;
#endif
		skip
	};
	goto spend;

iwait:	/* INTROSPECTION: (*Engine).awaitPredecessor: poll for the holder's generation, replay its journal, then give up */
	atomic {
		!wt[i] ->
#if RENEWAL
		renew();
#endif
		jk = 0;
		do
		:: jk < NJ && !DEAD_ENTRY(i, jk) -> jk++
		:: jk < NJ && DEAD_ENTRY(i, jk) -> eon[i] = 0; drop_lease(); goto replay
		:: jk == NJ -> break
		od;
		sread(rs);
		if
		:: rs != S_OK -> wt[i] = 1; goto iwait
		:: s_gen > g || s_fam != f -> eon[i] = 0; drop_lease(); goto load
		:: s_gen == g && s_fam == f && s_brk -> eon[i] = 0; drop_lease(); goto broken
		:: s_gen == g && s_fam == f && !s_brk && s_lh != HID(i) -> eon[i] = 0; drop_lease(); goto load
		:: s_gen == g && s_fam == f && !s_brk && s_lh == HID(i) && el[i] < IWAIT -> wt[i] = 1; goto iwait
#if GO_HANDBACK
		:: s_gen == g && s_fam == f && !s_brk && s_lh == HID(i) && el[i] >= IWAIT && handbacks < GRACE ->
			/* main: put the record back with the predecessor's expired lease; whoever comes next asks again */
			scas(myv, rs);
			if
			:: rs == S_OK || rs == S_LOST -> setrec(g, f, pred, false); s_lage = LSAT
			:: else	/* our own lease stays: the next claim asks too (not with GO_ASK_TAKEOVER_ONLY) */
			fi;
			handbacks++; eon[i] = 0; drop_lease(); goto backoff
		:: s_gen == g && s_fam == f && !s_brk && s_lh == HID(i) && el[i] >= IWAIT && handbacks >= GRACE ->
#else
		:: s_gen == g && s_fam == f && !s_brk && s_lh == HID(i) && el[i] >= IWAIT ->
#endif
			/* nobody committed within the wait: the pair is lost; mark broken, do not present */
			scas(s_ver, rs);
			if
			:: rs == S_OK || rs == S_LOST -> setrec(g, f, 0, true); eon[i] = 0; drop_lease(); goto broken
			:: else -> wt[i] = 1; goto iwait
			fi
		fi
	};
#endif

replay:	/* refresh/journal.go: (*Engine).replay: lock a dead process's entry, discard it if superseded, else commit it */
	atomic {
		jk = 0;
		do
		:: jk < NJ && !DEAD_ENTRY(i, jk) -> jk++
		:: jk < NJ && DEAD_ENTRY(i, jk) -> break
		:: jk == NJ -> goto load	/* gone, or locked meanwhile */
		od;
		sread(rs);
		if
		:: rs != S_OK -> goto backoff	/* entry.release: retried later */
		:: rs == S_OK && s_gen >= j_gen[jk] ->
			if
			:: pst[TOK(j_fam[jk], j_gen[jk])] != P_COMMITTED -> pst[TOK(j_fam[jk], j_gen[jk])] = P_SUPERSEDED
			:: else
			fi;
			j_gen[jk] = 0; goto load	/* superseded by a newer generation: discarded */
		:: else ->
			pg = j_gen[jk]; pf = j_fam[jk]; psg = j_sg[jk]; psf = j_sf[jk]; pv = j_ver[jk]; ph = j_heal[jk]; pk = jk;
			j_lock[jk] = HID(i); forget(); goto commit
		fi
	};

lwait:	/* step 3: (*Engine).sleep, then load again */
	atomic { !wt[i] -> goto load };

backoff:	/* (*Engine).start: a failed flight backs off (the model: one tick, within a quarter lease) */
	atomic { forget(); eon[i] = 0; wt[i] = 1 };
	atomic { !wt[i] -> goto load };

broken:	/* ErrLineageBroken */
#if HEALING
	goto heal;
#else
	goto finish;
#endif

#if HEALING
heal:	/* HEALING: refresh/heal.go: (*Engine).heal: one instance re-bootstraps under a claim; everyone adopts */
	atomic {
		eon[i] = 0;
		sread(rs);
		if
		:: rs != S_OK -> goto backoff
		:: else
		fi;
		if
		:: !s_brk -> goto load	/* healed (or never broken): adopt through load */
		:: else
		fi;
		g = s_gen; f = s_fam; v = s_ver;
		if
		:: s_lh != 0 && s_lh != HID(i) && !EXPIRED_FOR(i) -> wt[i] = 1; goto hwait	/* a heal in progress */
		:: else
		fi;
		if
		:: nfam >= MAXFAM -> goto finish	/* model bound: no family left to mint */
		:: else
		fi;
		scas(v, rs);	/* claim the re-bootstrap (a lease on the broken record) */
		if
		:: rs == S_OK -> setrec(g, f, HID(i), true); myv = s_ver;
#if RENEWAL
			hold[i] = 1; lt[i] = 0; lost = false;
#endif
		:: rs == S_LOST -> setrec(g, f, HID(i), true); goto backoff
		:: rs == S_CONFLICT -> goto heal
		:: rs == S_FAIL -> goto backoff
		fi
	};
	atomic {	/* bootstrap (Generate, or the bootstrap command) once; step 6: journal it */
		if
		:: ifaults < IFAULTS -> ifaults++;	/* (*Engine).healFailed: release the claim, keep the mark, back off */
			scas(myv, rs);
			if :: rs == S_OK || rs == S_LOST -> setrec(s_gen, s_fam, 0, true) :: else fi;
			drop_lease(); goto backoff
		:: else
		fi;
		/* a new family; generation N+2: the N+1 of a lost pair is never reused (I3) */
		pg = g + 2; pf = nfam; nfam++; psg = g; psf = f; ph = true; pv = myv; pk = JS(i);
		pst[TOK(pf, pg)] = P_JOURNALED; forget();
		assert(j_gen[pk] == 0 || s_gen >= j_gen[pk]);	/* MODEL: the slot is free or superseded */
#if !MUT_NOJOURNAL
		j_gen[pk] = pg; j_fam[pk] = pf; j_sg[pk] = psg; j_sf[pk] = psf; j_ver[pk] = pv; j_heal[pk] = 1; j_lock[pk] = HID(i);
#else
		pk = NOPAIR;
#endif
		goto commit
	};
hwait:	/* HEALING: (*Engine).heal: poll a heal in progress */
	atomic { !wt[i] -> goto heal };
#endif

finish:
	atomic { assert(pg == 0);	/* MODEL: nothing pending at the end */
		eon[i] = 0; fin[i] = true; wt[i] = true };
	goto theend
	} unless { kill[i] };

	/* crashed: memory is gone; the journal and the lease stay */
	atomic { wt[i] = true; eon[i] = 0; el[i] = 0;
#if RENEWAL
		hold[i] = 0; lt[i] = 0;
#endif
	};
	/* restart, as a new holder */
	atomic { inc[i]++; up[i] = true; kill[i] = false; wt[i] = false; printf("EV %d restarts as h%d\n", i, HID(i)) };
	goto restart;
theend:
	skip
}

/* a crash before any step of any running instance */
proctype Crasher() {
	byte x;
end:	do
	:: atomic {
		crashes < MAXCRASH && ((up[0] && !fin[0]) || (up[1] && !fin[1]) || (up[2] && !fin[2])) ->
		if
		:: up[0] && !fin[0] -> x = 0
		:: up[1] && !fin[1] -> x = 1
		:: up[2] && !fin[2] -> x = 2
		fi;
		crashes++; up[x] = false; kill[x] = true;
		printf("EV %d(h%d) CRASHES\n", x, 1 + x + N*inc[x]);
		/* the kernel drops the dead process's flocks */
		jk = 0;
		do
		:: jk < NJ && j_lock[jk] == 1 + x + N*inc[x] -> j_lock[jk] = 0; jk++
		:: jk < NJ && j_lock[jk] != 1 + x + N*inc[x] -> jk++
		:: jk == NJ -> break
		od;
		x = 0
	   }
	od
}

/* partitions: one instance at a time cut off from the store, at most OUTMAX ticks */
proctype Partition() {
end:	do
	:: atomic { outs < MAXOUT && !cut[0] && !cut[1] && !cut[2] ->
		outs++; oage = 0;
		if
		:: cut[0] = true
		:: cut[1] = true
		:: cut[2] = true
		fi }
	:: atomic { cut[0] || cut[1] || cut[2] -> cut[0] = false; cut[1] = false; cut[2] = false; oage = 0 }
	od
}

#define ALLWAIT (wt[0] && wt[1] && wt[2])
#define ALLFIN (fin[0] && fin[1] && fin[2])

inline age(x) {
	if
	:: up[x] && !fin[x] ->
		if :: eon[x] && el[x] < ESAT -> el[x]++ :: else fi;
#if RENEWAL
		if :: hold[x] && lt[x] < L -> lt[x]++ :: else fi;
#endif
		wt[x] = false
	:: else
	fi
}

/* abstract time: one tick when every running instance waits for one */
proctype Clock() {
end:	do
	:: atomic {
		ALLWAIT && !ALLFIN && !((cut[0] || cut[1] || cut[2]) && oage >= OUTMAX) ->
		if :: s_lh != 0 && s_lage < LSAT -> s_lage++ :: else fi;
		if :: (cut[0] || cut[1] || cut[2]) -> oage++ :: else fi;
		age(0); age(1); age(2);
		printf("EV tick (lease age %d)\n", s_lage)
	   }
	od
}

/* I2 at the end of a run: every pair the issuer answered is committed,
   discarded as superseded, or reported orphaned; no journal holds an
   entry (each restart replayed its host's). P_MINTED pairs are the ones
   whose answer never reached a live process. */
proctype Final() {
	byte x;
	atomic {
		ALLFIN ->
		x = 0;
		do
		:: x < NT -> assert(pst[x] != P_JOURNALED); x++	/* I2: the pair was dropped */
		:: x == NT -> break
		od;
		x = 0;
		do
		:: x < NJ -> assert(j_gen[x] == 0); x++	/* I2: every journal replayed */
		:: x == NJ -> break
		od;
#if KEEP
		assert(s_gen >= MAXGEN && !s_brk);	/* KEEP: the lineage moved on */
#endif
		x = 0
	}
}

init {
	atomic {
		hoff[0] = SK;
#if SKEWAHEAD
		hoff[1] = 2*SK;	/* host 1 ahead only: halves the space; both orders meet anyway */
#else
		if
		:: hoff[1] = 0	/* host 1 behind */
		:: hoff[1] = 2*SK	/* host 1 ahead */
		fi;
#endif
		up[0] = true; up[1] = true; up[2] = true;
		run Inst(0); run Inst(1); run Inst(2);
		run Clock(); run Final();
		if :: MAXCRASH > 0 -> run Crasher() :: else fi;
		if :: MAXOUT > 0 -> run Partition() :: else fi
	}
}

#if LIVE
/* I4 and progress: every instance finishes: no wait lasts forever */
ltl done { <> ALLFIN }
/* progress: the fleet commits every generation up to MAXGEN (with
   HEALING, or when no crash can lose a pair mid-call) ... */
ltl commits { <> (s_gen >= MAXGEN) }
/* ... or, when a crash mid-call lost a pair and nothing heals, it ends
   with the lineage marked broken, never stuck */
ltl progress { <> (s_gen >= MAXGEN || s_brk) }
#endif
