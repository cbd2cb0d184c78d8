package dev.remocal.jetbrains.core.launch;

import java.nio.file.Path;
import java.util.Map;

/**
 * What the patcher returns: the launch to run, and the files it refers to that the caller must
 * write before starting it (the Gradle init script and the session's environment). The patcher
 * itself writes nothing, so it stays a function of its inputs.
 */
public record Patched(Launch launch, Map<Path, String> files) {
    public Patched {
        files = Map.copyOf(files);
    }
}
