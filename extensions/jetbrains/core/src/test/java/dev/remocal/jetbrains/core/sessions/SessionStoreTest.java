package dev.remocal.jetbrains.core.sessions;

import dev.remocal.jetbrains.core.Vectors;
import dev.remocal.jetbrains.core.protocol.Methods;
import dev.remocal.jetbrains.core.protocol.Protocol;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SessionStoreTest {
    @Test
    void followsTheDaemonsNotifications() {
        SessionStore store = new SessionStore();
        List<SessionStore.Kind> events = new ArrayList<>();
        store.addListener(e -> events.add(e.kind()));

        store.reset(Vectors.read("remocal.session.list.result", Protocol.SessionListResult.class));
        assertEquals(List.of("s1", "s2"), store.mine().stream().map(s -> s.id).toList());

        store.apply(Methods.SESSION_CHANGED, Vectors.json("remocal.sessionChanged.params"));
        assertEquals("degraded", store.session("s1").orElseThrow().state);
        assertEquals("lost the connection to the agent", store.session("s1").orElseThrow().reason);

        store.apply(Methods.SESSION_CHANGED, Vectors.json("remocal.sessionChanged.remote.params"));
        assertEquals(1, store.remote().size());
        List<SessionStore.Lock> locks = store.locks();
        assertEquals(1, locks.size(), "only the stolen port is a lock, not the mirrored one");
        SessionStore.Lock l = locks.get(0);
        assertEquals("shop/s-0bq3n8c2zd", l.remoteSession());
        assertEquals("bob", l.user());
        assertEquals(8080, l.port());
        assertEquals("bob", l.filter().headers.get("X-User"));

        store.apply(Methods.CONFLICT, Vectors.json("remocal.conflict.params"));
        store.apply(Methods.CONFLICT, Vectors.json("remocal.conflict.taken.params"));
        assertEquals(1, store.conflictsOf("s1").size());
        assertTrue(store.conflicts().get(0).isTaken(), "newest first");

        store.apply(Methods.SESSION_CHANGED, Vectors.json("remocal.sessionChanged.remote-ended.params"));
        assertTrue(store.remote().isEmpty() && store.locks().isEmpty());

        Protocol.SessionChanged ended = Vectors.read("remocal.sessionChanged.params", Protocol.SessionChanged.class);
        ended.session.state = "ended";
        store.sessionChanged(ended);
        assertEquals(List.of("s2"), store.mine().stream().map(s -> s.id).toList());

        store.reset(Vectors.read("remocal.session.list.remote.result", Protocol.SessionListResult.class));
        assertEquals(List.of("s2"), store.mine().stream().map(s -> s.id).toList());
        assertEquals(1, store.locks().size());
        assertEquals(2, store.conflicts().size(), "a reconnect keeps the conflicts seen");

        assertEquals(List.of(SessionStore.Kind.RESET, SessionStore.Kind.SESSION_CHANGED, SessionStore.Kind.REMOTE_CHANGED,
                SessionStore.Kind.CONFLICT, SessionStore.Kind.TAKEN, SessionStore.Kind.REMOTE_ENDED, SessionStore.Kind.SESSION_ENDED,
                SessionStore.Kind.RESET), events);
    }

    @Test
    void showsQueueSplitsLikePorts() {
        SessionStore store = new SessionStore();
        store.reset(Vectors.read("remocal.session.list.queues.result", Protocol.SessionListResult.class));
        List<SessionStore.QueueSplit> rows = store.queueSplits();
        assertEquals(List.of(
                "s3: queue orders-worker/orders steal [tenant=a]",
                "s3: queue orders-worker/invoices mirror [region=eu-.*, body $.amount=4[2-9]|[5-9][0-9]]",
                "shop/s-b0bq0e0e01: queue orders-worker/orders steal [tenant=b] 412 delivered",
                "shop/s-b0bq0e0e01: queue orders-worker/invoices mirror 0 delivered"),
                rows.stream().map(r -> r.session() + ": " + r.text()).toList());
        SessionStore.QueueSplit mine = rows.get(0);
        assertTrue(mine.mine());
        assertEquals(List.of("ORDERS_GROUP", "ORDERS_STREAM"), List.copyOf(mine.env().keySet()), "sorted by name");
        assertEquals("{orders}.remocal.session-s-4l1c3xq7de", mine.env().get("ORDERS_STREAM"));
        assertEquals(null, mine.delivered());
        SessionStore.QueueSplit bobs = rows.get(2);
        assertEquals("bob", bobs.user());
        assertEquals("deployment/orders-worker", bobs.target());
        assertEquals("2026-11-25T09:30:00Z", bobs.since());

        // The operator's next count replaces the last; the session's end takes its splits away.
        Protocol.SessionChanged more = Vectors.read("remocal.sessionChanged.remote-queues.params", Protocol.SessionChanged.class);
        more.remote.queueSplits.get(0).delivered = 413;
        store.sessionChanged(more);
        assertEquals(413L, store.queueSplits().get(2).delivered());
        more.remote.phase = "Ended";
        more.remote.queueSplits = null;
        store.sessionChanged(more);
        assertEquals(List.of("s3", "s3"), store.queueSplits().stream().map(SessionStore.QueueSplit::session).toList());

        // Sessions without splits have none.
        store.reset(Vectors.read("remocal.session.list.remote.result", Protocol.SessionListResult.class));
        assertTrue(store.queueSplits().isEmpty());
        assertEquals("", SessionStore.QueueSplit.filterText(null));
    }

    @Test
    void keepsOnlyTheNewestConflicts() {
        SessionStore store = new SessionStore();
        for (int i = 0; i < SessionStore.MAX_CONFLICTS + 10; i++) {
            Protocol.Conflict c = Vectors.read("remocal.conflict.params", Protocol.Conflict.class);
            c.port = i;
            store.conflict(c);
        }
        assertEquals(SessionStore.MAX_CONFLICTS, store.conflicts().size());
        assertEquals(SessionStore.MAX_CONFLICTS + 9, store.conflicts().get(0).port);
    }
}
