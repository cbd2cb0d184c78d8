package dev.remocal.jetbrains.core.rpc;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.PipedInputStream;
import java.io.PipedOutputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The connection against a scripted peer over pipes (a unit-test seam; the real daemon is
 * exercised by DaemonIT through test/e2e/jetbrains).
 */
class RpcConnectionTest {
    PipedInputStream clientIn;
    PipedOutputStream peerOut;
    PipedInputStream peerIn;
    PipedOutputStream clientOut;
    ExecutorService events;
    RpcConnection conn;
    final BlockingQueue<String> notes = new LinkedBlockingQueue<>();
    final BlockingQueue<String> closed = new LinkedBlockingQueue<>();

    @BeforeEach
    void setUp() throws IOException {
        clientIn = new PipedInputStream(1 << 16);
        peerOut = new PipedOutputStream(clientIn);
        peerIn = new PipedInputStream(1 << 16);
        clientOut = new PipedOutputStream(peerIn);
        events = Executors.newSingleThreadExecutor(r -> new Thread(r, "test-events"));
        conn = new RpcConnection(clientIn, clientOut, 1 << 20, new RpcConnection.Handler() {
            @Override
            public void onNotification(String method, JsonElement params) {
                notes.add(Thread.currentThread().getName() + " " + method + " " + params);
            }

            @Override
            public void onClosed(Throwable cause) {
                closed.add(String.valueOf(cause));
            }
        }, events, s -> {});
        conn.start();
    }

    @AfterEach
    void tearDown() {
        conn.close();
        events.shutdownNow();
    }

    JsonObject peerRead() throws IOException {
        return JsonParser.parseString(new String(Framing.read(peerIn, 1 << 20), StandardCharsets.UTF_8)).getAsJsonObject();
    }

    void peerSend(String json) throws IOException {
        Framing.write(peerOut, json.getBytes(StandardCharsets.UTF_8));
    }

    @Test
    void answersMatchRequestsByIdAndErrorsCarryTheirReason() throws Exception {
        CompletableFuture<JsonElement> a = conn.request("remocal/daemon/info", null, Duration.ofSeconds(10));
        CompletableFuture<JsonElement> b = conn.request("remocal/session/stop", JsonParser.parseString("{\"id\":\"s9\"}"), Duration.ofSeconds(10));
        JsonObject ra = peerRead();
        JsonObject rb = peerRead();
        assertEquals("remocal/daemon/info", ra.get("method").getAsString());
        assertEquals("s9", rb.getAsJsonObject("params").get("id").getAsString());
        peerSend("{\"jsonrpc\":\"2.0\",\"id\":" + rb.get("id") + ",\"error\":{\"code\":1003,\"message\":\"no session s9\",\"data\":{\"reason\":\"session_not_found\"}}}");
        peerSend("{\"jsonrpc\":\"2.0\",\"id\":" + ra.get("id") + ",\"result\":{\"version\":\"0.3.0\"}}");
        assertEquals("0.3.0", a.get(5, TimeUnit.SECONDS).getAsJsonObject().get("version").getAsString());
        ExecutionException e = assertThrows(ExecutionException.class, () -> b.get(5, TimeUnit.SECONDS));
        RpcException re = assertInstanceOf(RpcException.class, e.getCause());
        assertEquals(1003, re.code());
        assertEquals("session_not_found", re.reason());
    }

    @Test
    void notificationsArriveInOrderOnTheEventsThread() throws Exception {
        peerSend("{\"jsonrpc\":\"2.0\",\"method\":\"remocal/targetsChanged\",\"params\":{\"provider\":\"local\"}}");
        peerSend("not json");
        peerSend("{\"jsonrpc\":\"2.0\",\"method\":\"remocal/configChanged\",\"params\":{\"valid\":true}}");
        assertEquals("test-events remocal/targetsChanged {\"provider\":\"local\"}", notes.poll(5, TimeUnit.SECONDS));
        assertEquals("test-events remocal/configChanged {\"valid\":true}", notes.poll(5, TimeUnit.SECONDS));
    }

    @Test
    void aTimeoutCancelsOnTheDaemon() throws Exception {
        CompletableFuture<JsonElement> f = conn.request("remocal/session/start", null, Duration.ofMillis(200));
        JsonObject req = peerRead();
        ExecutionException e = assertThrows(ExecutionException.class, () -> f.get(5, TimeUnit.SECONDS));
        assertInstanceOf(TimeoutException.class, e.getCause());
        assertTrue(e.getCause().getMessage().contains("remocal/session/start"), e.getCause().getMessage());
        JsonObject cancel = peerRead();
        assertEquals("$/cancelRequest", cancel.get("method").getAsString());
        assertEquals(req.get("id"), cancel.getAsJsonObject("params").get("id"));
        // The daemon's late answer is ignored.
        peerSend("{\"jsonrpc\":\"2.0\",\"id\":" + req.get("id") + ",\"error\":{\"code\":-32800,\"message\":\"cancelled\"}}");
    }

    @Test
    void cancellingTheFutureCancelsOnTheDaemon() throws Exception {
        CompletableFuture<JsonElement> f = conn.request("remocal/session/start", null, null);
        JsonObject req = peerRead();
        f.cancel(true);
        JsonObject cancel = peerRead();
        assertEquals("$/cancelRequest", cancel.get("method").getAsString());
        assertEquals(req.get("id"), cancel.getAsJsonObject("params").get("id"));
    }

    @Test
    void cancellingADecodedResultCancelsTheRequest() throws Exception {
        CompletableFuture<JsonElement> raw = conn.request("remocal/session/start", null, null);
        CompletableFuture<String> typed = RpcConnection.decoded(raw, JsonElement::toString);
        JsonObject req = peerRead();
        typed.cancel(true);
        assertTrue(raw.isCancelled());
        JsonObject cancel = peerRead();
        assertEquals("$/cancelRequest", cancel.get("method").getAsString());
        assertEquals(req.get("id"), cancel.getAsJsonObject("params").get("id"));
    }

    @Test
    void aRequestFromTheDaemonIsRefusedNotLeftWaiting() throws Exception {
        peerSend("{\"jsonrpc\":\"2.0\",\"id\":77,\"method\":\"window/workDoneProgress/create\",\"params\":{}}");
        JsonObject answer = peerRead();
        assertEquals(77, answer.get("id").getAsInt());
        assertEquals(-32601, answer.getAsJsonObject("error").get("code").getAsInt());
    }

    @Test
    void theEndOfTheStreamFailsPendingRequestsAndTellsTheHandler() throws Exception {
        CompletableFuture<JsonElement> f = conn.request("remocal/session/list", null, null);
        peerRead();
        peerOut.close();
        ExecutionException e = assertThrows(ExecutionException.class, () -> f.get(5, TimeUnit.SECONDS));
        assertInstanceOf(ConnectionClosedException.class, e.getCause());
        assertNotEquals("null", closed.poll(5, TimeUnit.SECONDS));
        assertTrue(conn.isClosed());
        CompletableFuture<JsonElement> after = conn.request("remocal/session/list", null, null);
        assertInstanceOf(ConnectionClosedException.class, assertThrows(ExecutionException.class, () -> after.get(5, TimeUnit.SECONDS)).getCause());
    }
}
