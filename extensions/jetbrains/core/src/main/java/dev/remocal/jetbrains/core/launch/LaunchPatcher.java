package dev.remocal.jetbrains.core.launch;

import dev.remocal.jetbrains.core.protocol.Protocol;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Turns a launch and a session's start result into the launch to run (docs/jetbrains.md,
 * "Run configurations"). Two steps, both plain data:
 * <ol>
 *   <li>{@link #programFor} says what to ask the daemon for ({@code program} of
 *   remocal/session/start): the daemon, not the plugin, decides between env and a wrapper;</li>
 *   <li>{@link #patch} applies the result: the session's env merged into the launch's
 *   ({@link EnvMerge}), and, when the daemon returned a wrapper, the wrapper's
 *   {@code remocal exec --join SOCKET --} in front of the launch's argv.</li>
 * </ol>
 * Patching a launch patched for the same session returns it unchanged; one patched for another
 * session is refused, so a session is never applied twice or on top of another.
 */
public final class LaunchPatcher {
    /** The variable every session's env sets: the session's socket. */
    public static final String SOCKET_ENV = "REMOCAL_SESSION_SOCKET";

    private final Path gradleDir;

    /** @param gradleDir where {@link #patch} places the Gradle init script and env file. */
    public LaunchPatcher(Path gradleDir) {
        this.gradleDir = gradleDir;
    }

    /** The program of remocal/session/start for this launch. */
    public static Protocol.Program programFor(Launch l) throws PatchException {
        Protocol.Program p = new Protocol.Program();
        p.path = l.executable();
        p.args = l.args().isEmpty() ? null : l.args();
        p.launch = "auto";
        switch (l.kind()) {
            case GRADLE -> p.launch = "env"; // the init script hands env to the tasks; Gradle is never wrapped
            case MAVEN -> {
                String name = Path.of(l.executable()).getFileName().toString();
                if (name.equals("mvnd") || name.startsWith("mvnd.")) {
                    throw new PatchException("mvnd keeps a Maven daemon that would serve later builds in this session; "
                            + "run the configuration with mvn (or ./mvnw) instead");
                }
                // Maven stays local, what it forks joins: the first process to join a
                // transparentFirst session (Maven's JVM, through the bootstrap library in
                // LD_PRELOAD) is left alone, its children are intercepted. Env, not a
                // wrapper, because IDEs hand Maven's JVM over as Java parameters whose
                // executable cannot be replaced.
                p.launch = "env";
                p.transparentFirst = true;
            }
            default -> {
                if (l.debugger()) {
                    p.transparentFirst = true;
                }
            }
        }
        return p;
    }

    public Patched patch(Launch l, Protocol.SessionStartResult r) throws PatchException {
        if (r == null || r.session == null || r.session.id == null || r.env == null) {
            throw new PatchException("the session start result has no session or env; this is a bug in remocal or the plugin, please report it");
        }
        String socket = r.env.get(SOCKET_ENV);
        String mine = l.env().get(SOCKET_ENV);
        if (mine != null && !mine.equals(socket)) {
            throw new PatchException("this launch already runs in another remocal session (" + SOCKET_ENV + "=" + mine
                    + "); remove " + SOCKET_ENV + " and LD_PRELOAD from the run configuration's environment, or turn remocal off for it");
        }
        if (l.kind() == LaunchKind.GRADLE) {
            return patchGradle(l, r);
        }
        boolean wantWrapper = l.debugger();
        List<String> wrapper = r.wrapper == null || r.wrapper.isEmpty() ? null : r.wrapper;
        if (wantWrapper && wrapper == null) {
            throw new PatchException("session " + r.session.id + " was started without a wrapper, but this " + l.kind().name().toLowerCase(java.util.Locale.ROOT)
                    + " launch needs one so that " + l.executable() + " itself stays local; start the session with LaunchPatcher.programFor(launch)");
        }
        Launch out = l.withEnv(EnvMerge.merge(l.env(), r.env));
        if (wrapper != null) {
            out = out.withArgv(wrapped(l.argv(), wrapper, socket));
        }
        return new Patched(out, Map.of());
    }

    /** prefix (the wrapper up to and including "--") + argv, unless argv already starts with it. */
    static List<String> wrapped(List<String> argv, List<String> wrapper, String socket) throws PatchException {
        int sep = wrapper.indexOf("--");
        if (sep < 1) {
            throw new PatchException("the daemon's wrapper " + wrapper + " has no \"--\" before the program; update remocal (or the plugin) so that both speak daemon protocol 1.1");
        }
        List<String> prefix = wrapper.subList(0, sep + 1);
        if (argv.size() >= prefix.size() && argv.subList(0, prefix.size()).equals(prefix)) {
            return argv;
        }
        // remocal exec --join OTHER-SOCKET -- ...: patched for another session.
        if (argv.size() > 3 && argv.get(1).equals("exec") && argv.get(2).equals("--join") && !argv.get(3).equals(socket)) {
            throw new PatchException("this launch is already wrapped for another remocal session (" + String.join(" ", argv.subList(0, 4))
                    + "); remove the remocal wrapper from the run configuration, or turn remocal off for it");
        }
        List<String> out = new ArrayList<>(prefix);
        out.addAll(argv);
        return out;
    }

    private Patched patchGradle(Launch l, Protocol.SessionStartResult r) throws PatchException {
        if (r.wrapper != null && !r.wrapper.isEmpty()) {
            throw new PatchException("session " + r.session.id + " came with a wrapper, but Gradle launches take the session's env through an init script; "
                    + "start the session with LaunchPatcher.programFor(launch) (launch \"env\")");
        }
        Path script = GradleInit.script(gradleDir, r.session.id);
        List<String> args = l.args();
        for (int i = 0; i + 1 < args.size(); i++) {
            if (!args.get(i).equals("--init-script") && !args.get(i).equals("-I")) {
                continue;
            }
            String name = Path.of(args.get(i + 1)).getFileName().toString();
            if (args.get(i + 1).equals(script.toString())) {
                return new Patched(l, Map.of()); // already patched for this session
            }
            if (name.startsWith(GradleInit.FILE_PREFIX) && name.endsWith(GradleInit.SCRIPT_SUFFIX)) {
                throw new PatchException("this Gradle launch already runs in another remocal session (" + args.get(i + 1)
                        + "); remove that --init-script from the run configuration, or turn remocal off for it");
            }
        }
        Path envFile = GradleInit.envFile(gradleDir, r.session.id);
        List<String> newArgs = new ArrayList<>(List.of("--init-script", script.toString()));
        newArgs.addAll(args);
        return new Patched(l.withArgs(newArgs), Map.of(
                script, GradleInit.scriptText(envFile),
                envFile, GradleInit.envJson(r.session.id, r.env)));
    }
}
