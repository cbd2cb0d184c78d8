package dev.remocal.jetbrains.core.protocol;

import com.google.gson.JsonElement;
import com.google.gson.JsonParser;
import dev.remocal.jetbrains.core.TestRepo;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.stream.Stream;

import static java.util.Map.entry;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Decodes every golden vector of protocol/testdata/daemon into its Java type and re-encodes it:
 * the JSON trees must be equal, so a field the Java side misses or misnames fails here. The map
 * is the list: a vector file it does not name fails the test, so a new payload on the Go side
 * must be mapped (and typed) here too.
 */
class GoldenVectorsTest {
    static final Map<String, Class<?>> VECTORS = Map.ofEntries(
            entry("initialize.result", Protocol.InitializeResult.class),
            entry("error.policy.params", Protocol.ErrorData.class),
            entry("remocal.config.resolve.params", Protocol.ConfigParams.class),
            entry("remocal.config.resolve.result", Protocol.ConfigResult.class),
            entry("remocal.config.verify.params", Protocol.ConfigParams.class),
            entry("remocal.config.verify.result", Protocol.ConfigResult.class),
            entry("remocal.configChanged.params", Protocol.ConfigChanged.class),
            entry("remocal.conflict.params", Protocol.Conflict.class),
            entry("remocal.conflict.taken.params", Protocol.Conflict.class),
            entry("remocal.daemon.info.result", Protocol.DaemonInfo.class),
            entry("remocal.daemon.shutdown.params", Protocol.DaemonShutdownParams.class),
            entry("remocal.namespaces.result", Protocol.NamespacesResult.class),
            entry("remocal.session.detail.params", Protocol.SessionParams.class),
            entry("remocal.session.detail.result", Protocol.SessionDetail.class),
            entry("remocal.session.kill.params", Protocol.RemoteSessionParams.class),
            entry("remocal.session.list.remote.result", Protocol.SessionListResult.class),
            entry("remocal.session.list.queues.result", Protocol.SessionListResult.class),
            entry("remocal.session.start.queues.result", Protocol.SessionStartResult.class),
            entry("remocal.sessionChanged.remote-queues.params", Protocol.SessionChanged.class),
            entry("remocal.session.list.result", Protocol.SessionListResult.class),
            entry("remocal.session.start.params", Protocol.SessionStartParams.class),
            entry("remocal.session.start.result", Protocol.SessionStartResult.class),
            entry("remocal.session.stop.params", Protocol.SessionParams.class),
            entry("remocal.sessionChanged.params", Protocol.SessionChanged.class),
            entry("remocal.sessionChanged.remote-ended.params", Protocol.SessionChanged.class),
            entry("remocal.sessionChanged.remote.params", Protocol.SessionChanged.class),
            entry("remocal.sessionChanged.policy.params", Protocol.SessionChanged.class),
            entry("remocal.sessionChanged.moved.params", Protocol.SessionChanged.class),
            entry("remocal.targets.params", Protocol.TargetsParams.class),
            entry("remocal.targets.result", Protocol.TargetsResult.class),
            entry("remocal.targetsChanged.params", Protocol.TargetsChanged.class));

    static Path dir() {
        return TestRepo.root().resolve("protocol/testdata/daemon");
    }

    @Test
    void everyVectorDecodesAndReencodesEqual() throws IOException {
        List<String> failures = new ArrayList<>();
        TreeSet<String> seen = new TreeSet<>();
        try (Stream<Path> files = Files.list(dir())) {
            for (Path f : (Iterable<Path>) files.sorted()::iterator) {
                String name = f.getFileName().toString();
                if (!name.endsWith(".json")) {
                    continue;
                }
                String key = name.substring(0, name.length() - ".json".length());
                seen.add(key);
                Class<?> type = VECTORS.get(key);
                if (type == null) {
                    failures.add(name + ": no Java type is mapped to this vector; add it to GoldenVectorsTest.VECTORS (and the type to Protocol)");
                    continue;
                }
                String text = Files.readString(f, StandardCharsets.UTF_8);
                JsonElement want = JsonParser.parseString(text);
                Object decoded = Json.GSON.fromJson(text, type);
                JsonElement got = Json.GSON.toJsonTree(decoded);
                if (!want.equals(got)) {
                    failures.add(name + " as " + type.getSimpleName() + ":\n  want " + want + "\n  got  " + got);
                }
            }
        }
        for (String key : VECTORS.keySet()) {
            if (!seen.contains(key)) {
                failures.add(key + ".json is mapped but missing from " + dir());
            }
        }
        if (!failures.isEmpty()) {
            fail(String.join("\n", failures));
        }
    }

    @Test
    void everyMethodAndNotificationHasAVector() {
        for (String m : Stream.concat(Methods.REQUESTS.stream(), Methods.NOTIFICATIONS.stream()).toList()) {
            String prefix = m.replace('/', '.') + ".";
            assertTrue(VECTORS.keySet().stream().anyMatch(k -> k.startsWith(prefix)), m + " has no golden vector");
        }
    }

    @Test
    void conflictTakenKeepsItsEmptySessionId() {
        Protocol.Conflict c = Json.GSON.fromJson("{\"sessionId\":\"\",\"taken\":true,\"port\":8080}", Protocol.Conflict.class);
        assertTrue(c.isTaken());
        assertEquals("", c.sessionId);
    }
}
