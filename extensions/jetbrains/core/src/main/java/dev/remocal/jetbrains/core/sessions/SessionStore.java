package dev.remocal.jetbrains.core.sessions;

import com.google.gson.JsonElement;
import dev.remocal.jetbrains.core.protocol.Json;
import dev.remocal.jetbrains.core.protocol.Methods;
import dev.remocal.jetbrains.core.protocol.Protocol;
import dev.remocal.jetbrains.core.protocol.QueueSplits;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * What the tool window shows, kept from the daemon's notifications: this daemon's sessions
 * ("mine": every IDE window and script sharing the daemon), the operator's sessions of everybody
 * on targets in view, the port locks they hold, the queues they split, and recent conflicts. {@link #reset} replaces it
 * all from remocal/session/list after every (re)connect, since notifications sent while
 * disconnected are lost. Thread-safe; listeners run on the thread that applied the change (a
 * daemon client thread, never the UI's: views hop to their own thread).
 */
public final class SessionStore {
    /** How many conflicts are remembered (the newest). */
    public static final int MAX_CONFLICTS = 50;

    public enum Kind { SESSION_CHANGED, SESSION_ENDED, REMOTE_CHANGED, REMOTE_ENDED, CONFLICT, TAKEN, RESET }

    /** One change; only the member its kind names is set. */
    public record Event(Kind kind, Protocol.Session session, Protocol.RemoteSession remote, Protocol.Conflict conflict) {}

    public interface Listener {
        void onEvent(Event e);
    }

    /** A port an operator session holds (a steal), for "port 8080 on deployment/api is stolen by bob since 10:02". */
    public record Lock(String remoteSession, String user, String client, String target, int port, String mode,
                       Protocol.HttpFilter filter, String since) {}

    /**
     * A queue a session takes a share of, shown like its ports: "queue orders-worker/orders steal
     * [tenant=b] 412 delivered". {@code session} is a session id of mine, or namespace/name of an
     * operator session ({@code mine} false); {@code env} is set for mine (the variables its
     * programs get), {@code delivered} and {@code since} for the operator's.
     */
    public record QueueSplit(String session, boolean mine, String user, String target, String consumer, String queue, String mode,
                             QueueSplits.Filter filter, Map<String, String> env, Long delivered, String since) {
        /** "queue orders-worker/orders steal [tenant=b] 412 delivered". */
        public String text() {
            String f = filterText(filter);
            return "queue " + consumer + "/" + queue + " " + mode + (f.isEmpty() ? "" : " [" + f + "]")
                    + (delivered == null ? "" : " " + delivered + " delivered");
        }

        /** "tenant=a, body $.amount=4[2-9]": header patterns, then JSON paths into the body, each sorted. */
        public static String filterText(QueueSplits.Filter f) {
            if (f == null) {
                return "";
            }
            List<String> parts = new ArrayList<>();
            if (f.headers != null) {
                new TreeMap<>(f.headers).forEach((k, v) -> parts.add(k + "=" + v));
            }
            if (f.body != null) {
                new TreeMap<>(f.body).forEach((k, v) -> parts.add("body " + k + "=" + v));
            }
            return String.join(", ", parts);
        }
    }

    private final Map<String, Protocol.Session> mine = new LinkedHashMap<>();
    private final Map<String, Protocol.RemoteSession> remote = new LinkedHashMap<>();
    private final Deque<Protocol.Conflict> conflicts = new ArrayDeque<>();
    private final List<Listener> listeners = new CopyOnWriteArrayList<>();

    public void addListener(Listener l) {
        listeners.add(l);
    }

    /** Feeds a daemon notification; other methods are ignored. */
    public void apply(String method, JsonElement params) {
        if (params == null || !params.isJsonObject()) {
            return;
        }
        if (method.equals(Methods.SESSION_CHANGED)) {
            sessionChanged(Json.GSON.fromJson(params, Protocol.SessionChanged.class));
        } else if (method.equals(Methods.CONFLICT)) {
            conflict(Json.GSON.fromJson(params, Protocol.Conflict.class));
        }
    }

    public void sessionChanged(Protocol.SessionChanged sc) {
        Event ev;
        synchronized (this) {
            if (sc.remote != null) {
                String key = key(sc.remote);
                if ("Ended".equals(sc.remote.phase)) {
                    remote.remove(key);
                    ev = new Event(Kind.REMOTE_ENDED, null, sc.remote, null);
                } else {
                    remote.put(key, sc.remote);
                    ev = new Event(Kind.REMOTE_CHANGED, null, sc.remote, null);
                }
            } else if (sc.session != null && sc.session.id != null) {
                if ("ended".equals(sc.session.state)) {
                    mine.remove(sc.session.id);
                    ev = new Event(Kind.SESSION_ENDED, sc.session, null, null);
                } else {
                    mine.put(sc.session.id, sc.session);
                    ev = new Event(Kind.SESSION_CHANGED, sc.session, null, null);
                }
            } else {
                return;
            }
        }
        fire(ev);
    }

    public void conflict(Protocol.Conflict c) {
        synchronized (this) {
            conflicts.addFirst(c);
            while (conflicts.size() > MAX_CONFLICTS) {
                conflicts.removeLast();
            }
        }
        fire(new Event(c.isTaken() ? Kind.TAKEN : Kind.CONFLICT, null, null, c));
    }

    /** Replaces sessions with a remocal/session/list result; conflicts are kept (the list has none). */
    public void reset(Protocol.SessionListResult list) {
        synchronized (this) {
            mine.clear();
            remote.clear();
            for (Protocol.Session s : list.sessions) {
                if (!"ended".equals(s.state)) {
                    mine.put(s.id, s);
                }
            }
            if (list.remote != null) {
                for (Protocol.RemoteSession r : list.remote) {
                    if (!"Ended".equals(r.phase)) {
                        remote.put(key(r), r);
                    }
                }
            }
        }
        fire(new Event(Kind.RESET, null, null, null));
    }

    private void fire(Event ev) {
        for (Listener l : listeners) {
            l.onEvent(ev);
        }
    }

    private static String key(Protocol.RemoteSession r) {
        return r.namespace + "/" + r.name;
    }

    /** This daemon's sessions, oldest first. */
    public synchronized List<Protocol.Session> mine() {
        List<Protocol.Session> out = new ArrayList<>(mine.values());
        out.sort(Comparator.comparing((Protocol.Session s) -> s.startedAt == null ? "" : s.startedAt).thenComparing(s -> s.id));
        return out;
    }

    public synchronized Optional<Protocol.Session> session(String id) {
        return Optional.ofNullable(mine.get(id));
    }

    /** The operator's sessions, by namespace then name. */
    public synchronized List<Protocol.RemoteSession> remote() {
        List<Protocol.RemoteSession> out = new ArrayList<>(remote.values());
        out.sort(Comparator.comparing((Protocol.RemoteSession r) -> r.namespace).thenComparing(r -> r.name));
        return out;
    }

    /** Every port an operator session holds, by target then port. */
    public synchronized List<Lock> locks() {
        List<Lock> out = new ArrayList<>();
        for (Protocol.RemoteSession r : remote.values()) {
            for (Protocol.RemotePort p : r.ports) {
                if (Boolean.TRUE.equals(p.lock)) {
                    out.add(new Lock(key(r), r.user, r.client, r.target, p.port, p.mode, p.filter, p.since));
                }
            }
        }
        out.sort(Comparator.comparing(Lock::target).thenComparingInt(Lock::port));
        return out;
    }

    /**
     * Every queue split: those of my sessions (oldest session first), then the operator's
     * sessions' (by namespace and name), each session's in the order it asked for them.
     */
    public synchronized List<QueueSplit> queueSplits() {
        List<QueueSplit> out = new ArrayList<>();
        for (Protocol.Session s : mine()) {
            if (s.queueSplits != null) {
                for (Protocol.SessionQueueSplit q : s.queueSplits) {
                    out.add(new QueueSplit(s.id, true, null, s.target, q.consumer, q.queue, q.mode, q.filter,
                            q.env == null ? Map.of() : Collections.unmodifiableMap(new TreeMap<>(q.env)), null, null));
                }
            }
        }
        for (Protocol.RemoteSession r : remote()) {
            if (r.queueSplits != null) {
                for (Protocol.RemoteQueueSplit q : r.queueSplits) {
                    out.add(new QueueSplit(key(r), false, r.user, r.target, q.consumer, q.queue, q.mode, q.filter, null, q.delivered, q.since));
                }
            }
        }
        return out;
    }

    /** Recent conflicts, newest first. */
    public synchronized List<Protocol.Conflict> conflicts() {
        return List.copyOf(conflicts);
    }

    /** Conflicts of one of this daemon's sessions, newest first. */
    public synchronized List<Protocol.Conflict> conflictsOf(String sessionId) {
        return conflicts.stream().filter(c -> sessionId.equals(c.sessionId)).toList();
    }
}
