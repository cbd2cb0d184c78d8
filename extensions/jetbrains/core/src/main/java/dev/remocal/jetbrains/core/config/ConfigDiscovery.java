package dev.remocal.jetbrains.core.config;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import dev.remocal.jetbrains.core.daemon.DaemonClient;
import dev.remocal.jetbrains.core.protocol.Protocol;

import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * A project's remocal configuration, asked of the daemon (remocal/config/resolve): the daemon
 * finds the nearest .remocal/config.json above the folder, fills in defaults and validates it by
 * the same code `remocal exec` uses, so the plugin never disagrees with the CLI.
 */
public final class ConfigDiscovery {
    private ConfigDiscovery() {}

    /**
     * The resolved configuration of a folder.
     *
     * @param file     the file used, or null when there is none (the defaults apply)
     * @param target   its target, or null
     * @param incoming its network.incoming.mode ("mirror", "steal", "off"), or null
     */
    public record Resolved(String file, boolean valid, List<Protocol.Problem> problems, String target, String namespace,
                           String incoming) {
        /** The problems as lines for a notification: "config.json:3:34 $.network.incoming.mode: got ...". */
        public List<String> problemLines() {
            String name = file == null ? "the configuration" : Path.of(file).getFileName().toString();
            return problems.stream().map(p -> name + (p.line == null ? "" : ":" + p.line + (p.column == null ? "" : ":" + p.column))
                    + " " + p.path + ": " + p.message).toList();
        }
    }

    public static CompletableFuture<Resolved> resolve(DaemonClient client, Path workspaceFolder) {
        Protocol.ConfigParams p = new Protocol.ConfigParams();
        p.workspaceFolder = workspaceFolder.toAbsolutePath().toString();
        return client.resolveConfig(p).thenApply(ConfigDiscovery::from);
    }

    static Resolved from(Protocol.ConfigResult r) {
        String file = r.file == null || r.file.isEmpty() ? null : r.file;
        JsonObject c = r.config;
        return new Resolved(file, r.valid, List.copyOf(r.problems), string(c, "target"), string(c, "kubernetes", "namespace"),
                string(c, "network", "incoming", "mode"));
    }

    private static String string(JsonObject o, String... path) {
        JsonElement e = o;
        for (String k : path) {
            if (e == null || !e.isJsonObject()) {
                return null;
            }
            e = e.getAsJsonObject().get(k);
        }
        return e != null && e.isJsonPrimitive() ? e.getAsString() : null;
    }
}
