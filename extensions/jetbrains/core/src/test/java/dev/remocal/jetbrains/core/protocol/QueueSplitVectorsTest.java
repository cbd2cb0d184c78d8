package dev.remocal.jetbrains.core.protocol;

import com.google.gson.JsonElement;
import com.google.gson.JsonParser;
import com.google.gson.reflect.TypeToken;
import dev.remocal.jetbrains.core.TestRepo;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.lang.reflect.Type;
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
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Decodes every golden vector of protocol/testdata/queuesplit into its Java type and re-encodes
 * it: the JSON trees must be equal. A vector file the map does not name fails the test.
 */
class QueueSplitVectorsTest {
    static final Map<String, Type> VECTORS = Map.ofEntries(
            entry("splits", new TypeToken<List<QueueSplits.Split>>() {}.getType()),
            entry("remocalqueueconsumer", QueueSplits.RemocalQueueConsumer.class),
            entry("remocalqueueconsumer-list", QueueSplits.RemocalQueueConsumerList.class));

    static Path dir() {
        return TestRepo.root().resolve("protocol/testdata/queuesplit");
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
                Type type = VECTORS.get(key);
                if (type == null) {
                    failures.add(name + ": no Java type is mapped to this vector; add it to QueueSplitVectorsTest.VECTORS (and the type to QueueSplits)");
                    continue;
                }
                String text = Files.readString(f, StandardCharsets.UTF_8);
                JsonElement want = JsonParser.parseString(text);
                Object decoded = Json.GSON.fromJson(text, type);
                JsonElement got = Json.GSON.toJsonTree(decoded, type);
                if (!want.equals(got)) {
                    failures.add(name + ":\n  want " + want + "\n  got  " + got);
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
    void aStealOfOneTenantReadsAsTheGoSideWroteIt() {
        List<QueueSplits.Split> splits = Json.GSON.fromJson(
                "[{\"consumer\":\"orders-worker\",\"mode\":\"steal\",\"filter\":{\"headers\":{\"tenant\":\"a\"}}}]",
                new TypeToken<List<QueueSplits.Split>>() {}.getType());
        assertEquals("steal", splits.get(0).mode);
        assertEquals("a", splits.get(0).filter.headers.get("tenant"));
        assertEquals(null, splits.get(0).queue);
    }
}
