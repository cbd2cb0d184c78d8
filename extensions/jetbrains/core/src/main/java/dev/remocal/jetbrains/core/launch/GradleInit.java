package dev.remocal.jetbrains.core.launch;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import dev.remocal.jetbrains.core.protocol.Json;

import java.nio.file.Path;
import java.util.Map;

/**
 * The Gradle side of a session: an init script, passed with {@code --init-script}, that adds the
 * session's environment to the processes of the tasks named on the command line (JavaExec, Test,
 * Exec and anything else that forks a process with ProcessForkOptions) and to nothing else.
 *
 * <p>Why not the Gradle process's environment: the Gradle client hands the build to a long-lived
 * daemon that serves later, unrelated builds; a daemon spawned with LD_PRELOAD and the target's
 * variables would stay in the session (its dependency downloads and compilers too), and one
 * spawned earlier would not be in it at all. {@code --no-daemon} does not help either: it still
 * forks a single-use daemon when JVM options differ, and the whole build, compilation included,
 * would run in the target's context. The init script is per build, so nothing outlives the run.
 *
 * <p>Test tasks the session reaches are never up to date: a run the user started in the target's
 * context must run, not be skipped because the same tests passed locally before.
 */
final class GradleInit {
    private GradleInit() {}

    static final String FILE_PREFIX = "remocal-session-";
    static final String SCRIPT_SUFFIX = ".init.gradle";

    static Path script(Path dir, String sessionId) {
        return dir.resolve(FILE_PREFIX + sessionId + SCRIPT_SUFFIX);
    }

    static Path envFile(Path dir, String sessionId) {
        return dir.resolve(FILE_PREFIX + sessionId + ".env.json");
    }

    /** The session's variables and how each combines with a task's own value (see EnvMerge). */
    static String envJson(String sessionId, Map<String, String> env) {
        JsonObject root = new JsonObject();
        root.addProperty("session", sessionId);
        JsonArray vars = new JsonArray();
        env.forEach((k, v) -> {
            JsonObject o = new JsonObject();
            o.addProperty("name", k);
            o.addProperty("value", v);
            EnvMerge.Style s = EnvMerge.styleOf(k);
            o.addProperty("how", switch (s) {
                case REPLACE -> "set";
                case PREPEND_PATH -> "prepend";
                case APPEND_PATH, APPEND_OPTIONS -> "append";
            });
            o.addProperty("separator", s.separator);
            vars.add(o);
        });
        root.add("vars", vars);
        return Json.GSON.toJson(root) + "\n";
    }

    /** Groovy, so it runs with any Gradle without the Kotlin DSL's compile step. */
    static String scriptText(Path envFile) {
        String path = envFile.toString().replace("\\", "\\\\").replace("'", "\\'");
        return """
                // Written by the remocal plugin for one run; see docs/jetbrains.md ("Gradle").
                // The session's variables go to the processes of the tasks named on the
                // command line, at configuration time (so the configuration cache keeps them),
                // and to nothing else: not to Gradle, its daemon or other tasks.
                def remocalSession = new groovy.json.JsonSlurper().parse(new File('%s'))
                def remocalRequested = gradle.startParameter.taskNames.findAll { !it.startsWith('-') }
                def remocalReached = []
                allprojects {
                    tasks.withType(org.gradle.process.ProcessForkOptions).configureEach { t ->
                        def wanted = remocalRequested.any { sel ->
                            sel == t.name || sel == t.path || ':' + sel == t.path || (!sel.startsWith(':') && t.path.endsWith(':' + sel))
                        }
                        if (!wanted) {
                            return
                        }
                        remocalSession.vars.each { v ->
                            def cur = t.environment[v.name]?.toString()
                            if (v.how == 'set' || cur == null || cur.isEmpty()) {
                                t.environment(v.name, v.value)
                            } else if (!cur.contains(v.value)) {
                                t.environment(v.name, v.how == 'prepend' ? v.value + v.separator + cur : cur + v.separator + v.value)
                            }
                        }
                        if (t instanceof org.gradle.api.tasks.testing.Test) {
                            // A run in the target's context must run, not be skipped as up to date.
                            t.outputs.upToDateWhen { false }
                        }
                        remocalReached << t.path
                    }
                }
                gradle.taskGraph.whenReady {
                    if (remocalReached.isEmpty()) {
                        logger.warn("remocal: none of the tasks ${remocalRequested} starts a process (JavaExec, Test, Exec); session ${remocalSession.session} reaches nothing in this build. Name the task that runs your program, e.g. run, test or bootRun.")
                    } else {
                        logger.lifecycle("remocal: ${remocalReached.sort().join(', ')} run in session ${remocalSession.session}")
                    }
                }
                """.formatted(path);
    }
}
