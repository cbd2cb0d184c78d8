package dev.remocal.jetbrains.core.launch;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * A process the IDE is about to start, as plain data: the glue translates a run configuration's
 * command line into one and the patched one back.
 *
 * @param kind       what kind of run configuration it came from
 * @param executable the program: an absolute path or a name looked up in PATH
 * @param args       its arguments (for Gradle: tasks and options, as on the command line)
 * @param env        the environment variables the configuration sets on top of the IDE's. For
 *                   list-valued variables (JAVA_TOOL_OPTIONS, LD_PRELOAD, ...) the glue passes
 *                   the effective value (the IDE's own included), since the patched value
 *                   replaces it
 * @param workDir    the working directory, or null for the IDE's default
 * @param debugger   the executable is a debugger that starts the program (dlv exec, gdb): it
 *                   must stay local and only what it starts joins the session
 */
public record Launch(LaunchKind kind, String executable, List<String> args, Map<String, String> env, String workDir,
                     boolean debugger) {
    public Launch {
        Objects.requireNonNull(kind, "kind");
        Objects.requireNonNull(executable, "executable");
        args = List.copyOf(args == null ? List.of() : args);
        // Insertion order kept: the patched launch lists the configuration's variables first.
        env = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(env == null ? Map.of() : env));
    }

    public Launch(LaunchKind kind, String executable, List<String> args, Map<String, String> env, String workDir) {
        this(kind, executable, args, env, workDir, false);
    }

    /** The full argv: executable then args. */
    public List<String> argv() {
        List<String> argv = new ArrayList<>(args.size() + 1);
        argv.add(executable);
        argv.addAll(args);
        return argv;
    }

    public Launch withArgv(List<String> argv) {
        return new Launch(kind, argv.get(0), argv.subList(1, argv.size()), env, workDir, debugger);
    }

    public Launch withEnv(Map<String, String> newEnv) {
        return new Launch(kind, executable, args, newEnv, workDir, debugger);
    }

    public Launch withArgs(List<String> newArgs) {
        return new Launch(kind, executable, newArgs, env, workDir, debugger);
    }
}
