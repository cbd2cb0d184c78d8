package dev.remocal.jetbrains.core.rpc;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import com.google.gson.JsonPrimitive;
import dev.remocal.jetbrains.core.protocol.ErrorCodes;
import dev.remocal.jetbrains.core.protocol.Json;
import dev.remocal.jetbrains.core.protocol.Methods;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executor;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;

/**
 * A JSON-RPC 2.0 connection over LSP framing. Requests return futures that fail with
 * {@link RpcException} (an error answer), {@link TimeoutException} (no answer in time; the request
 * is cancelled on the daemon with {@code $/cancelRequest}) or {@link ConnectionClosedException};
 * cancelling a future cancels the request on the daemon too. Notifications are handed to the
 * handler on {@code events}, never on the reading thread, so a slow listener cannot stall answers.
 */
public final class RpcConnection implements AutoCloseable {
    /** Receives notifications (on the events executor). */
    public interface Handler {
        void onNotification(String method, JsonElement params);

        /** The connection ended (cause is why, or null after close()); called once, on the events executor. */
        void onClosed(Throwable cause);
    }

    private static final ScheduledExecutorService TIMERS = timers();

    private final InputStream in;
    private final OutputStream out;
    private final int maxFrame;
    private final Handler handler;
    private final Executor events;
    private final Consumer<String> log;
    private final Map<Long, CompletableFuture<JsonElement>> pending = new ConcurrentHashMap<>();
    private final AtomicLong ids = new AtomicLong();
    private final AtomicBoolean closed = new AtomicBoolean();
    private final Object writeLock = new Object();
    private Thread reader;

    public RpcConnection(InputStream in, OutputStream out, int maxFrame, Handler handler, Executor events, Consumer<String> log) {
        this.in = in;
        this.out = out;
        this.maxFrame = maxFrame;
        this.handler = handler;
        this.events = events;
        this.log = log;
    }

    private static ScheduledExecutorService timers() {
        ScheduledThreadPoolExecutor t = new ScheduledThreadPoolExecutor(1, r -> {
            Thread th = new Thread(r, "remocal-rpc-timeouts");
            th.setDaemon(true);
            return th;
        });
        t.setRemoveOnCancelPolicy(true);
        return t;
    }

    public void start() {
        reader = new Thread(this::readLoop, "remocal-rpc-reader");
        reader.setDaemon(true);
        reader.start();
    }

    /**
     * Sends a request. timeout null or zero: wait as long as the connection lives (session/start
     * on a Kubernetes target can take minutes; its progress arrives meanwhile).
     */
    public CompletableFuture<JsonElement> request(String method, Object params, Duration timeout) {
        long id = ids.incrementAndGet();
        CompletableFuture<JsonElement> f = new CompletableFuture<>();
        pending.put(id, f);
        f.whenComplete((r, t) -> {
            if (pending.remove(id) != null && (t instanceof CancellationException || t instanceof TimeoutException)) {
                cancelOnDaemon(id);
            }
        });
        JsonObject msg = new JsonObject();
        msg.addProperty("jsonrpc", "2.0");
        msg.addProperty("id", id);
        msg.addProperty("method", method);
        if (params != null) {
            msg.add("params", Json.GSON.toJsonTree(params));
        }
        try {
            send(msg);
        } catch (IOException e) {
            f.completeExceptionally(new ConnectionClosedException("cannot send " + method + " to the remocal daemon: " + e.getMessage(), e));
            return f;
        }
        if (timeout != null && !timeout.isZero()) {
            var timer = TIMERS.schedule(() -> f.completeExceptionally(new TimeoutException(
                    "the remocal daemon did not answer " + method + " within " + timeout.toSeconds() + " s; it may be stuck: see its log, or restart it")),
                    timeout.toMillis(), TimeUnit.MILLISECONDS);
            f.whenComplete((r, t) -> timer.cancel(false));
        }
        return f;
    }

    /**
     * raw's result mapped by decode, as a future whose cancellation cancels raw too (and so the
     * request on the daemon): a plain thenApply would leave the request running.
     */
    public static <T> CompletableFuture<T> decoded(CompletableFuture<JsonElement> raw, java.util.function.Function<JsonElement, T> decode) {
        CompletableFuture<T> out = raw.thenApply(decode);
        out.whenComplete((r, t) -> {
            if (t instanceof CancellationException) {
                raw.cancel(true);
            }
        });
        return out;
    }

    public void notify(String method, Object params) throws IOException {
        JsonObject msg = new JsonObject();
        msg.addProperty("jsonrpc", "2.0");
        msg.addProperty("method", method);
        msg.add("params", params == null ? new JsonObject() : Json.GSON.toJsonTree(params));
        send(msg);
    }

    private void cancelOnDaemon(long id) {
        if (closed.get()) {
            return;
        }
        JsonObject p = new JsonObject();
        p.addProperty("id", id);
        try {
            notify(Methods.CANCEL_REQUEST, p);
        } catch (IOException e) {
            log.accept("cancelling request " + id + ": " + e.getMessage());
        }
    }

    private void send(JsonObject msg) throws IOException {
        byte[] body = Json.GSON.toJson(msg).getBytes(StandardCharsets.UTF_8);
        if (body.length > maxFrame) {
            throw new IOException("a message of " + body.length + " bytes is over the limit of " + maxFrame);
        }
        synchronized (writeLock) {
            if (closed.get()) {
                throw new ConnectionClosedException("the connection to the remocal daemon is closed", null);
            }
            Framing.write(out, body);
        }
    }

    private void readLoop() {
        Throwable cause = null;
        try {
            byte[] body;
            while ((body = Framing.read(in, maxFrame)) != null) {
                dispatch(body);
            }
            cause = new ConnectionClosedException("the remocal daemon closed the connection", null);
        } catch (IOException | RuntimeException e) {
            cause = e;
        }
        shutdown(cause);
    }

    private void dispatch(byte[] body) throws IOException {
        JsonObject msg;
        try {
            JsonElement e = JsonParser.parseString(new String(body, StandardCharsets.UTF_8));
            if (!e.isJsonObject()) {
                log.accept("ignored a message that is not a JSON object");
                return;
            }
            msg = e.getAsJsonObject();
        } catch (JsonParseException e) {
            // A well-framed message with bad JSON: skip it, as the daemon does for ours.
            log.accept("ignored malformed JSON from the daemon: " + e.getMessage());
            return;
        }
        JsonElement id = msg.get("id");
        JsonElement method = msg.get("method");
        if (method != null && method.isJsonPrimitive()) {
            if (id != null && !id.isJsonNull()) {
                answerUnknown(id, method.getAsString());
                return;
            }
            String m = method.getAsString();
            JsonElement params = msg.get("params");
            events.execute(() -> {
                try {
                    handler.onNotification(m, params);
                } catch (RuntimeException e) {
                    log.accept("a listener of " + m + " failed: " + e);
                }
            });
            return;
        }
        if (id == null || !id.isJsonPrimitive() || !id.getAsJsonPrimitive().isNumber()) {
            log.accept("ignored a message with neither method nor numeric id");
            return;
        }
        CompletableFuture<JsonElement> f = pending.remove(id.getAsLong());
        if (f == null) {
            return; // cancelled or timed out already
        }
        JsonElement err = msg.get("error");
        if (err != null && err.isJsonObject()) {
            JsonObject eo = err.getAsJsonObject();
            int code = eo.has("code") ? eo.get("code").getAsInt() : ErrorCodes.INTERNAL_ERROR;
            String text = eo.has("message") ? eo.get("message").getAsString() : "error " + code;
            f.completeExceptionally(new RpcException(code, text, eo.get("data")));
        } else {
            f.complete(msg.get("result"));
        }
    }

    /** The daemon sends no requests today; answer any with method-not-found so it never waits. */
    private void answerUnknown(JsonElement id, String method) throws IOException {
        JsonObject msg = new JsonObject();
        msg.addProperty("jsonrpc", "2.0");
        msg.add("id", id);
        JsonObject err = new JsonObject();
        err.addProperty("code", ErrorCodes.METHOD_NOT_FOUND);
        err.add("message", new JsonPrimitive("the remocal JetBrains plugin does not handle " + method));
        msg.add("error", err);
        send(msg);
    }

    private void shutdown(Throwable cause) {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        ConnectionClosedException gone = new ConnectionClosedException(
                "the connection to the remocal daemon ended" + (cause == null ? "" : ": " + cause.getMessage()), cause);
        for (Long id : pending.keySet()) {
            CompletableFuture<JsonElement> f = pending.remove(id);
            if (f != null) {
                f.completeExceptionally(gone);
            }
        }
        try {
            out.close();
        } catch (IOException ignored) {
            // the peer is gone already
        }
        events.execute(() -> handler.onClosed(cause));
    }

    public boolean isClosed() {
        return closed.get();
    }

    /** Ends the connection: pending requests fail, the handler's onClosed gets null. */
    @Override
    public void close() {
        shutdown(null);
        try {
            in.close();
        } catch (IOException ignored) {
            // closing is best effort
        }
    }
}
