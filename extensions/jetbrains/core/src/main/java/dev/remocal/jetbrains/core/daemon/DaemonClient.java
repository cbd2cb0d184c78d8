package dev.remocal.jetbrains.core.daemon;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import dev.remocal.jetbrains.core.protocol.Json;
import dev.remocal.jetbrains.core.protocol.Methods;
import dev.remocal.jetbrains.core.protocol.Protocol;
import dev.remocal.jetbrains.core.rpc.RpcConnection;

import java.io.IOException;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * The plugin's connection to the user's remocal daemon: spawns {@code remocal daemon --stdio}
 * (which attaches to the shared daemon, starting it if needed), initializes, checks the protocol
 * version, and reconnects with backoff when the daemon goes away. Listeners get notifications,
 * connects and disconnects on one thread of their own, in order.
 */
public final class DaemonClient implements AutoCloseable {
    /** Callbacks on the client's events thread. */
    public interface Listener {
        default void onNotification(String method, JsonElement params) {}

        /** Connected (first time or again): state from before must be fetched anew (session/list). */
        default void onConnected(Protocol.InitializeResult result) {}

        /** The connection ended; reconnecting says whether the client retries. */
        default void onDisconnected(String message, boolean reconnecting) {}
    }

    public enum State { DISCONNECTED, CONNECTING, CONNECTED, INCOMPATIBLE, CLOSED }

    private final DaemonOptions opts;
    private final List<Listener> listeners = new CopyOnWriteArrayList<>();
    private final ExecutorService events;
    private final ScheduledExecutorService retries;
    private final Object lock = new Object();
    private volatile State state = State.DISCONNECTED;
    private volatile DaemonProcess current;
    private volatile String lastError = "";
    private Duration backoff;

    public DaemonClient(DaemonOptions opts) {
        this.opts = opts;
        this.backoff = opts.reconnectMin();
        this.events = Executors.newSingleThreadExecutor(r -> thread(r, "remocal-daemon-events"));
        this.retries = Executors.newSingleThreadScheduledExecutor(r -> thread(r, "remocal-daemon-reconnect"));
    }

    private static Thread thread(Runnable r, String name) {
        Thread t = new Thread(r, name);
        t.setDaemon(true);
        return t;
    }

    public void addListener(Listener l) {
        listeners.add(l);
    }

    public void removeListener(Listener l) {
        listeners.remove(l);
    }

    public State state() {
        return state;
    }

    /** Why the last connection attempt or connection failed ("" if none did). */
    public String lastError() {
        return lastError;
    }

    /** The connected daemon's initialize result, or null. */
    public Protocol.InitializeResult serverInfo() {
        DaemonProcess p = current;
        return p == null ? null : p.initializeResult();
    }

    /** Connects now (no-op when connected); fails with a message for the user. */
    public void connect() throws DaemonException {
        synchronized (lock) {
            if (state == State.CONNECTED || state == State.CLOSED) {
                if (state == State.CLOSED) {
                    throw new DaemonException("the remocal daemon client is closed", null);
                }
                return;
            }
            state = State.CONNECTING;
            DaemonProcess p;
            // Which process a close belongs to: a failed attempt's connection ends too, and
            // must not count as losing the current one.
            DaemonProcess[] self = new DaemonProcess[1];
            try {
                p = DaemonProcess.start(opts, new RpcConnection.Handler() {
                    @Override
                    public void onNotification(String method, JsonElement params) {
                        for (Listener l : listeners) {
                            l.onNotification(method, params);
                        }
                    }

                    @Override
                    public void onClosed(Throwable cause) {
                        connectionEnded(self[0], cause);
                    }
                }, events);
            } catch (DaemonException e) {
                lastError = e.getMessage();
                state = e instanceof IncompatibleDaemonException ? State.INCOMPATIBLE : State.DISCONNECTED;
                throw e;
            }
            self[0] = p;
            current = p;
            state = State.CONNECTED;
            backoff = opts.reconnectMin();
            lastError = "";
            events.execute(() -> listeners.forEach(l -> l.onConnected(p.initializeResult())));
        }
    }

    /** Runs on the events thread after a connection's last notification. */
    private void connectionEnded(DaemonProcess p, Throwable cause) {
        String msg;
        synchronized (lock) {
            if (state == State.CLOSED || cause == null || p == null || p != current) {
                return;
            }
            current = null;
            msg = "lost the connection to the remocal daemon: " + cause.getMessage() + p.stderrTail();
            lastError = msg;
            state = State.DISCONNECTED;
            p.destroy();
        }
        opts.log().accept(msg + "; reconnecting");
        listeners.forEach(l -> l.onDisconnected(msg, true));
        scheduleReconnect();
    }

    private void scheduleReconnect() {
        Duration wait;
        synchronized (lock) {
            if (state == State.CLOSED || state == State.INCOMPATIBLE) {
                return;
            }
            wait = backoff;
            backoff = backoff.multipliedBy(2).compareTo(opts.reconnectMax()) > 0 ? opts.reconnectMax() : backoff.multipliedBy(2);
        }
        retries.schedule(() -> {
            try {
                connect();
            } catch (DaemonException e) {
                opts.log().accept("reconnecting to the remocal daemon: " + e.getMessage());
                boolean again = state != State.INCOMPATIBLE && state != State.CLOSED;
                events.execute(() -> listeners.forEach(l -> l.onDisconnected(e.getMessage(), again)));
                scheduleReconnect();
            }
        }, wait.toMillis(), TimeUnit.MILLISECONDS);
    }

    /** A raw request with the default timeout. */
    public CompletableFuture<JsonElement> request(String method, Object params) {
        return request(method, params, opts.requestTimeout());
    }

    public CompletableFuture<JsonElement> request(String method, Object params, Duration timeout) {
        DaemonProcess p = current;
        if (p == null) {
            return CompletableFuture.failedFuture(new DaemonException("not connected to the remocal daemon"
                    + (lastError.isEmpty() ? "" : " (" + lastError + ")") + "; it reconnects by itself, or use Restart Daemon", null));
        }
        return p.rpc().request(method, params, timeout);
    }

    /** A typed request: the result decoded into type (null for a JSON null). */
    public <T> CompletableFuture<T> call(String method, Object params, Class<T> type, Duration timeout) {
        return RpcConnection.decoded(request(method, params, timeout), e -> e == null || e.isJsonNull() ? null : Json.GSON.fromJson(e, type));
    }

    public CompletableFuture<Protocol.DaemonInfo> info() {
        return call(Methods.DAEMON_INFO, null, Protocol.DaemonInfo.class, opts.requestTimeout());
    }

    public CompletableFuture<Protocol.NamespacesResult> namespaces() {
        return call(Methods.NAMESPACES, null, Protocol.NamespacesResult.class, opts.requestTimeout());
    }

    public CompletableFuture<Protocol.TargetsResult> targets(Protocol.TargetsParams p) {
        return call(Methods.TARGETS, p, Protocol.TargetsResult.class, opts.requestTimeout());
    }

    public CompletableFuture<Protocol.ConfigResult> resolveConfig(Protocol.ConfigParams p) {
        return call(Methods.CONFIG_RESOLVE, p, Protocol.ConfigResult.class, opts.requestTimeout());
    }

    public CompletableFuture<Protocol.ConfigResult> verifyConfig(Protocol.ConfigParams p) {
        return call(Methods.CONFIG_VERIFY, p, Protocol.ConfigResult.class, opts.requestTimeout());
    }

    /** No timeout of its own: a Kubernetes start reports $/progress and may take minutes; cancel the future to give up. */
    public CompletableFuture<Protocol.SessionStartResult> startSession(Protocol.SessionStartParams p) {
        return call(Methods.SESSION_START, p, Protocol.SessionStartResult.class, opts.sessionStartTimeout());
    }

    public CompletableFuture<Void> stopSession(String id) {
        return call(Methods.SESSION_STOP, new Protocol.SessionParams(id), Void.class, opts.requestTimeout());
    }

    public CompletableFuture<Protocol.SessionListResult> listSessions() {
        return call(Methods.SESSION_LIST, null, Protocol.SessionListResult.class, opts.requestTimeout());
    }

    public CompletableFuture<Protocol.SessionDetail> sessionDetail(String id) {
        return call(Methods.SESSION_DETAIL, new Protocol.SessionParams(id), Protocol.SessionDetail.class, opts.requestTimeout());
    }

    public CompletableFuture<Void> killSession(String namespace, String name) {
        return call(Methods.SESSION_KILL, new Protocol.RemoteSessionParams(namespace, name), Void.class, opts.requestTimeout());
    }

    public CompletableFuture<Void> shutdownDaemon(boolean force) {
        return call(Methods.DAEMON_SHUTDOWN, new Protocol.DaemonShutdownParams(force), Void.class, opts.requestTimeout());
    }

    /** Waits for a future, turning its failure into the exception inside (for callers off the UI thread). */
    public static <T> T await(CompletableFuture<T> f) throws Exception {
        try {
            return f.get();
        } catch (ExecutionException e) {
            if (e.getCause() instanceof Exception inner) {
                throw inner;
            }
            throw e;
        }
    }

    /** Ends this client's connection (LSP shutdown and exit; the shared daemon keeps running). */
    @Override
    public void close() {
        DaemonProcess p;
        synchronized (lock) {
            state = State.CLOSED;
            p = current;
            current = null;
        }
        retries.shutdownNow();
        if (p != null) {
            try {
                p.rpc().request(Methods.SHUTDOWN, null, Duration.ofSeconds(2)).get(3, TimeUnit.SECONDS);
                p.rpc().notify(Methods.EXIT, new JsonObject());
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } catch (ExecutionException | TimeoutException | IOException e) {
                opts.log().accept("closing the daemon connection: " + e.getMessage());
            }
            p.destroy();
        }
        events.shutdown();
    }
}
