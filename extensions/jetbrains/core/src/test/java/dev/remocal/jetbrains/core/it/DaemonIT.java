package dev.remocal.jetbrains.core.it;

import dev.remocal.jetbrains.core.Vectors;
import dev.remocal.jetbrains.core.config.ConfigDiscovery;
import dev.remocal.jetbrains.core.daemon.DaemonClient;
import dev.remocal.jetbrains.core.daemon.DaemonOptions;
import dev.remocal.jetbrains.core.daemon.IncompatibleDaemonException;
import dev.remocal.jetbrains.core.daemon.ProtocolVersion;
import dev.remocal.jetbrains.core.launch.Launch;
import dev.remocal.jetbrains.core.launch.LaunchKind;
import dev.remocal.jetbrains.core.launch.LaunchPatcher;
import dev.remocal.jetbrains.core.launch.Patched;
import dev.remocal.jetbrains.core.protocol.Protocol;
import dev.remocal.jetbrains.core.sessions.SessionFeed;
import dev.remocal.jetbrains.core.sessions.SessionStore;
import dev.remocal.jetbrains.core.targets.RecentTargets;
import dev.remocal.jetbrains.core.targets.TargetModel;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;

import static dev.remocal.jetbrains.core.daemon.DaemonClient.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The core against the real daemon and the local environment, run by test/e2e/jetbrains (Go),
 * which provides the environment (an isolated network namespace, localenv's App pod as the
 * target) and says where everything is in REMOCAL_IT_* variables.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class DaemonIT {
    static final Duration WAIT = Duration.ofSeconds(60);

    static String env(String name) {
        String v = System.getenv(name);
        if (v == null || v.isEmpty()) {
            throw new IllegalStateException(name + " is not set: this test runs from test/e2e/jetbrains (make jetbrains-core-test)");
        }
        return v;
    }

    static final String BINARY = env("REMOCAL_IT_BINARY");
    static final String SOCKET = env("REMOCAL_IT_SOCKET");
    static final String TARGET = env("REMOCAL_IT_TARGET");
    static final Path WORKSPACE = Path.of(env("REMOCAL_IT_WORKSPACE"));
    static final String CONTROL = env("REMOCAL_IT_CONTROL");
    static final String API_TOKEN = env("REMOCAL_IT_API_TOKEN");
    static final String FILE = env("REMOCAL_IT_FILE");
    static final String FILE_TEXT = env("REMOCAL_IT_FILE_TEXT");
    static final String PORT = env("REMOCAL_IT_PORT");
    static final String JAVA = Path.of(System.getProperty("java.home"), "bin", "java").toString();

    static DaemonClient client;
    static final SessionStore store = new SessionStore();
    static final List<String> log = new CopyOnWriteArrayList<>();
    static Path classes;

    static DaemonOptions options(ProtocolVersion needed) {
        return DaemonOptions.of(BINARY, "remocal-jetbrains-core-it", "0.0.0", List.of(WORKSPACE), s -> {
                    log.add(s);
                    System.out.println("  core: " + s);
                })
                .withCommand(List.of(BINARY, "daemon", "--stdio", "--socket", SOCKET), Map.of())
                .withNeeded(needed)
                .withReconnect(Duration.ofMillis(100), Duration.ofSeconds(1));
    }

    @BeforeAll
    static void connect(@TempDir Path tmp) throws Exception {
        classes = TestProgram.compile(Files.createDirectories(tmp.resolve("classes")));
        client = new DaemonClient(options(ProtocolVersion.NEEDED));
        SessionFeed.attach(client, store, log::add);
        client.connect();
    }

    @AfterAll
    static void close() {
        if (client != null) {
            client.close();
        }
    }

    @Test
    @Order(1)
    void checksTheProtocolVersion() throws Exception {
        // The version the daemon speaks is the one in protocol/testdata's golden initialize result.
        String current = Vectors.json("initialize.result").getAsJsonObject().getAsJsonObject("capabilities")
                .getAsJsonObject("experimental").getAsJsonObject("remocal").get("protocolVersion").getAsString();
        assertEquals(current, client.serverInfo().capabilities.experimental.remocal.protocolVersion);
        assertEquals(current, await(client.info()).protocolVersion);
        try (DaemonClient future = new DaemonClient(options(new ProtocolVersion(1, 99)))) {
            IncompatibleDaemonException e = assertThrows(IncompatibleDaemonException.class, future::connect);
            assertTrue(e.getMessage().contains("speaks protocol " + current + ", but this plugin needs 1.99") && e.getMessage().contains("update remocal"), e.getMessage());
            assertEquals(DaemonClient.State.INCOMPATIBLE, future.state());
        }
    }

    @Test
    @Order(2)
    void listsTheTargetAndResolvesTheConfiguration() throws Exception {
        TargetModel model = new TargetModel(await(client.namespaces()), await(client.targets(new Protocol.TargetsParams())));
        TargetModel.Row row = model.rows(new TargetModel.Filter("local", java.util.Set.of("pid"), null), new RecentTargets()).stream()
                .filter(r -> r.choice().ref().equals(TARGET)).findFirst().orElseThrow(() -> new AssertionError(TARGET + " is not among the targets"));
        assertTrue(row.ready(), row.toString());
        ConfigDiscovery.Resolved cfg = await(ConfigDiscovery.resolve(client, WORKSPACE));
        assertEquals(WORKSPACE.resolve(".remocal/config.json").toString(), cfg.file());
        assertTrue(cfg.valid(), cfg.problemLines().toString());
        assertEquals("steal", cfg.incoming());
    }

    /** The scenario: a java run configuration, patched, sees the target and gets its traffic. */
    @Test
    @Order(3)
    void aJavaLaunchRunsInTheTargetsContext(@TempDir Path state) throws Exception {
        Launch launch = new Launch(LaunchKind.JAVA, JAVA, List.of("-cp", classes.toString(), TestProgram.CLASS, "serve", FILE, PORT),
                Map.of("API_TOKEN", "the-local-token"), WORKSPACE.toString());
        Protocol.SessionStartResult res = start(launch, "run: probe");
        assertEquals(null, res.wrapper, "java is dynamically linked: env, no wrapper");
        Patched patched = new LaunchPatcher(state).patch(launch, res);
        try (ProcessLines p = run(patched.launch())) {
            assertEquals("child env API_TOKEN=" + API_TOKEN, p.await("child env ", WAIT));
            String file = p.await("child file ", WAIT);
            assertTrue(file.contains(FILE_TEXT), file);
            p.await("listening on ", WAIT);
            String[] body = new String[1];
            Poll.until(WAIT, "answered by the program (a stolen request)", () -> {
                body[0] = peerGet("/jetbrains-core-it");
                return body[0].contains(TestProgram.ANSWER) ? null : "the target answered: " + body[0];
            });
            assertEquals("200 " + TestProgram.ANSWER + ": /jetbrains-core-it", body[0]);
            Protocol.SessionDetail d = await(client.sessionDetail(res.session.id));
            assertTrue(d.subscriptions.stream().anyMatch(s -> s.port == Integer.parseInt(PORT) && s.mode.equals("steal") && s.deliveries > 0),
                    "subscriptions: " + d.subscriptions.size());
        } finally {
            stop(res.session.id);
        }
    }

    /** Maven's shape: the launched JVM stays local (the session's transparent first process), the JVM it forks joins. */
    @Test
    @Order(4)
    void aMavenLaunchKeepsMavenLocalAndItsForkInTheSession(@TempDir Path state) throws Exception {
        Launch launch = new Launch(LaunchKind.MAVEN, JAVA, List.of("-cp", classes.toString(), TestProgram.CLASS, "fork", FILE),
                Map.of(), WORKSPACE.toString());
        Protocol.SessionStartResult res = start(launch, "maven: probe");
        try {
            Patched patched = new LaunchPatcher(state).patch(launch, res);
            assertEquals(null, res.wrapper, "Maven takes env: IDEs cannot wrap the JVM they start for it");
            assertEquals(launch.argv(), patched.launch().argv());
            try (ProcessLines p = run(patched.launch())) {
                assertEquals("parent file missing", p.await("parent file ", WAIT), "the launched JVM (Maven) reads this machine's files");
                assertTrue(p.await("child file ", WAIT).contains(FILE_TEXT));
                assertEquals("child env API_TOKEN=" + API_TOKEN, p.await("child env ", WAIT));
                assertEquals(0, p.process.waitFor());
            }
        } finally {
            stop(res.session.id);
        }
    }

    /** A debugger's shape (dlv exec, gdb): it runs behind the wrapper, untouched, and what it starts joins. */
    @Test
    @Order(5)
    void aDebuggerLaunchStaysLocalBehindTheWrapper(@TempDir Path state) throws Exception {
        Launch launch = new Launch(LaunchKind.PLAIN, JAVA, List.of("-cp", classes.toString(), TestProgram.CLASS, "fork", FILE),
                Map.of(), WORKSPACE.toString(), true);
        Protocol.SessionStartResult res = start(launch, "debug: probe");
        try {
            Patched patched = new LaunchPatcher(state).patch(launch, res);
            List<String> argv = patched.launch().argv();
            assertEquals(List.of(BINARY, "exec", "--join"), argv.subList(0, 3));
            assertTrue(argv.contains("--transparent-first"), argv.toString());
            assertEquals(launch.argv(), argv.subList(argv.indexOf("--") + 1, argv.size()));
            try (ProcessLines p = run(patched.launch())) {
                assertEquals("parent file missing", p.await("parent file ", WAIT), "the debugger reads this machine's files");
                assertTrue(p.await("child file ", WAIT).contains(FILE_TEXT));
                assertEquals(0, p.process.waitFor());
            }
        } finally {
            stop(res.session.id);
        }
    }

    /** The daemon going away: the client reconnects (the forwarder starts a new daemon) and the store is refreshed. */
    @Test
    @Order(6)
    void reconnectsWhenTheDaemonGoesAway() throws Exception {
        int oldPid = await(client.info()).pid;
        java.util.concurrent.atomic.AtomicInteger resets = new java.util.concurrent.atomic.AtomicInteger();
        store.addListener(e -> {
            if (e.kind() == SessionStore.Kind.RESET) {
                resets.incrementAndGet();
            }
        });
        List<String> disconnects = new CopyOnWriteArrayList<>();
        client.addListener(new DaemonClient.Listener() {
            @Override
            public void onDisconnected(String message, boolean reconnecting) {
                disconnects.add(message);
            }
        });
        try (DaemonClient other = new DaemonClient(options(ProtocolVersion.NEEDED))) {
            other.connect();
            other.shutdownDaemon(true).exceptionally(e -> null); // the answer may be lost with the daemon
        }
        Poll.until(WAIT, "told of the disconnect", () -> disconnects.isEmpty() ? "no onDisconnected yet" : null);
        Poll.until(WAIT, "connected to a new daemon", () -> {
            try {
                return client.state() == DaemonClient.State.CONNECTED && await(client.info()).pid != oldPid ? null : "state " + client.state() + " " + client.lastError();
            } catch (Exception e) {
                return e.getMessage();
            }
        });
        assertNotEquals(oldPid, await(client.info()).pid);
        Poll.until(WAIT, "listing the sessions again after reconnecting", () -> resets.get() > 0 ? null : "no reset of the session store yet");
        assertTrue(disconnects.get(0).contains("lost the connection to the remocal daemon"), disconnects.get(0));
    }

    static Protocol.SessionStartResult start(Launch launch, String label) throws Exception {
        Protocol.SessionStartParams p = new Protocol.SessionStartParams();
        p.target = TARGET;
        p.workspaceFolder = WORKSPACE.toString();
        p.program = LaunchPatcher.programFor(launch);
        p.label = label;
        p.workDoneToken = new com.google.gson.JsonPrimitive("it-" + label);
        Protocol.SessionStartResult res = await(client.startSession(p));
        assertEquals("active", res.session.state);
        assertEquals(label, res.session.label);
        Poll.until(WAIT, "in the session store", () -> store.session(res.session.id).isPresent() ? null : "mine: " + store.mine().size());
        return res;
    }

    static void stop(String id) throws Exception {
        await(client.stopSession(id));
        Poll.until(WAIT, "gone from the session store", () -> store.session(id).isEmpty() ? null : "still listed");
    }

    static ProcessLines run(Launch l) throws IOException {
        ProcessBuilder pb = new ProcessBuilder(l.argv()).directory(Path.of(l.workDir()).toFile());
        pb.environment().putAll(l.env());
        return new ProcessLines(pb);
    }

    /** A request from the Peer pod to the target's port, sent by the Go test (never dialled from here). */
    static String peerGet(String path) {
        try {
            HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
            HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(CONTROL + "/peer?path=" + path)).timeout(Duration.ofSeconds(15)).build(),
                    HttpResponse.BodyHandlers.ofString());
            return r.statusCode() + " " + r.body();
        } catch (IOException e) {
            return "control endpoint: " + e;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return "interrupted";
        }
    }
}
