package dev.remocal.jetbrains.core.daemon;

import dev.remocal.jetbrains.core.rpc.Framing;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * How to reach the daemon.
 *
 * @param command             the forwarder's argv: {@code [remocal, daemon, --stdio]} (tests add
 *                            {@code --socket})
 * @param env                 variables added to the forwarder's environment (XDG_RUNTIME_DIR in tests)
 * @param clientName          clientInfo.name: shown as the owner of sessions ("IntelliJ IDEA 2024.1")
 * @param workspaceFolders    project roots whose .remocal/config.json the daemon watches
 * @param needed              the protocol version required
 * @param requestTimeout      for every request but session/start
 * @param sessionStartTimeout for session/start (zero: none; cancel the future instead)
 * @param connectTimeout      for spawning the forwarder and initialize (the forwarder may start the daemon)
 */
public record DaemonOptions(List<String> command, Map<String, String> env, String clientName, String clientVersion,
                            List<Path> workspaceFolders, ProtocolVersion needed, Duration requestTimeout,
                            Duration sessionStartTimeout, Duration connectTimeout, Duration reconnectMin,
                            Duration reconnectMax, int maxFrame, Consumer<String> log) {
    public DaemonOptions {
        command = List.copyOf(command);
        env = Map.copyOf(env);
        workspaceFolders = List.copyOf(workspaceFolders);
    }

    /** The defaults for a binary: `remocal daemon --stdio`, 30 s requests, reconnect 1 s .. 30 s. */
    public static DaemonOptions of(String binary, String clientName, String clientVersion, List<Path> folders, Consumer<String> log) {
        return new DaemonOptions(List.of(binary, "daemon", "--stdio"), Map.of(), clientName, clientVersion, folders,
                ProtocolVersion.NEEDED, Duration.ofSeconds(30), Duration.ZERO, Duration.ofSeconds(30),
                Duration.ofSeconds(1), Duration.ofSeconds(30), Framing.DEFAULT_MAX_FRAME, log);
    }

    public DaemonOptions withCommand(List<String> c, Map<String, String> e) {
        return new DaemonOptions(c, e, clientName, clientVersion, workspaceFolders, needed, requestTimeout,
                sessionStartTimeout, connectTimeout, reconnectMin, reconnectMax, maxFrame, log);
    }

    public DaemonOptions withNeeded(ProtocolVersion v) {
        return new DaemonOptions(command, env, clientName, clientVersion, workspaceFolders, v, requestTimeout,
                sessionStartTimeout, connectTimeout, reconnectMin, reconnectMax, maxFrame, log);
    }

    public DaemonOptions withReconnect(Duration min, Duration max) {
        return new DaemonOptions(command, env, clientName, clientVersion, workspaceFolders, needed, requestTimeout,
                sessionStartTimeout, connectTimeout, min, max, maxFrame, log);
    }
}
