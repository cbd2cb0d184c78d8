package dev.remocal.jetbrains.plugin;

import com.intellij.execution.configurations.GeneralCommandLine;
import dev.remocal.jetbrains.core.launch.EnvMerge;
import dev.remocal.jetbrains.core.launch.Launch;
import dev.remocal.jetbrains.core.launch.LaunchKind;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Platform command lines to core launches and back; nothing else. */
public final class Launches {
    private Launches() {}

    /**
     * The configuration's env plus, when the process inherits the IDE's environment, the IDE's
     * value of each list-valued variable (JAVA_TOOL_OPTIONS, LD_PRELOAD, ...): the patched value
     * replaces the inherited one, so it must include it (EnvMerge).
     */
    public static Map<String, String> env(Map<String, String> configured, boolean inheritsParent) {
        Map<String, String> env = new LinkedHashMap<>(configured);
        if (inheritsParent) {
            System.getenv().forEach((k, v) -> {
                if (EnvMerge.styleOf(k) != EnvMerge.Style.REPLACE) {
                    env.putIfAbsent(k, v);
                }
            });
        }
        return env;
    }

    public static Launch from(LaunchKind kind, GeneralCommandLine cmd, boolean debugger) {
        return new Launch(kind, cmd.getExePath(), cmd.getParametersList().getList(),
                env(cmd.getEnvironment(), cmd.getParentEnvironmentType() != GeneralCommandLine.ParentEnvironmentType.NONE),
                cmd.getWorkDirectory() == null ? null : cmd.getWorkDirectory().getPath(), debugger);
    }

    /** Writes a patched launch back: env always, argv when a wrapper changed it. */
    public static void applyTo(GeneralCommandLine cmd, Launch patched) {
        cmd.getEnvironment().putAll(patched.env());
        List<String> argv = patched.argv();
        if (!argv.get(0).equals(cmd.getExePath()) || !patched.args().equals(cmd.getParametersList().getList())) {
            cmd.setExePath(argv.get(0));
            cmd.getParametersList().clearAll();
            cmd.getParametersList().addAll(argv.subList(1, argv.size()));
        }
    }
}
