package dev.remocal.jetbrains.core.launch;

import dev.remocal.jetbrains.core.protocol.Protocol;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Every kind of launch, patched with env or with a wrapper; then patched again (nothing changes). */
class LaunchPatcherTest {
    static final String SOCK = "/run/user/1000/remocal/sessions/s7.sock";
    static final String BOOT = "/run/user/1000/remocal/libremocal_bootstrap-0123.so";
    static final String REMOCAL = "/usr/local/bin/remocal";
    static final Path GRADLE_DIR = Path.of("/home/alice/.cache/remocal-idea/gradle");

    static Map<String, String> sessionEnv(String... extra) {
        Map<String, String> env = new LinkedHashMap<>();
        env.put("API_TOKEN", "remote-secret-token");
        env.put("LD_PRELOAD", BOOT);
        env.put(LaunchPatcher.SOCKET_ENV, SOCK);
        for (int i = 0; i + 1 < extra.length; i += 2) {
            env.put(extra[i], extra[i + 1]);
        }
        return env;
    }

    static Protocol.SessionStartResult result(Map<String, String> env, List<String> wrapperPrefix, Launch l) {
        Protocol.SessionStartResult r = new Protocol.SessionStartResult();
        r.session = new Protocol.Session();
        r.session.id = "s7";
        r.env = env;
        if (wrapperPrefix != null) {
            // As the daemon builds it: the prefix, "--", the program it was told about.
            r.wrapper = new ArrayList<>(wrapperPrefix);
            r.wrapper.add("--");
            r.wrapper.addAll(l.argv());
        }
        return r;
    }

    static List<String> join(boolean transparent) {
        return transparent ? List.of(REMOCAL, "exec", "--join", SOCK, "--transparent-first") : List.of(REMOCAL, "exec", "--join", SOCK);
    }

    static List<String> concat(List<String> a, String sep, List<String> b) {
        List<String> out = new ArrayList<>(a);
        out.add(sep);
        out.addAll(b);
        return out;
    }

    static Launch launch(LaunchKind kind, String exe, List<String> args, Map<String, String> env) {
        return new Launch(kind, exe, args, env, "/home/alice/inventory");
    }

    record Case(String name, Launch launch, Map<String, String> session, boolean wrapper,
                List<String> wantArgv, Map<String, String> wantEnv, String wantLaunchMode, Boolean wantTransparent) {
        @Override
        public String toString() {
            return name;
        }
    }

    static Stream<Arguments> cases() {
        Launch java = launch(LaunchKind.JAVA, "/usr/lib/jvm/java-17/bin/java", List.of("-cp", "out", "shop.Main"),
                Map.of("JAVA_TOOL_OPTIONS", "-javaagent:/idea/coverage.jar", "API_TOKEN", "local-token", "SPRING_PROFILES_ACTIVE", "dev"));
        Launch javaWrapped = launch(LaunchKind.JAVA, "java", List.of("-jar", "app.jar"), Map.of());
        Launch maven = launch(LaunchKind.MAVEN, "/usr/bin/mvn", List.of("-q", "spring-boot:run"), Map.of("MAVEN_OPTS", "-Xmx1g"));
        Launch goStatic = launch(LaunchKind.GO, "/home/alice/inventory/bin/inventory", List.of("--debug"), Map.of());
        Launch goDynamic = launch(LaunchKind.GO, "/home/alice/inventory/bin/inventory", List.of(), Map.of("LD_PRELOAD", "/usr/lib/libjemalloc.so"));
        Launch dlv = new Launch(LaunchKind.GO, "/home/alice/go/bin/dlv", List.of("--listen=127.0.0.1:40000", "--headless", "exec", "bin/inventory"),
                Map.of(), "/home/alice/inventory", true);
        Launch python = launch(LaunchKind.PYTHON, "/usr/bin/python3", List.of("-m", "pyservice"), Map.of("PYTHONPATH", "/home/alice/pyservice/src"));
        Launch node = launch(LaunchKind.NODE, "/usr/bin/node", List.of("server.js"), Map.of("NODE_OPTIONS", "--require /idea/debugConnector.js"));
        Launch plain = launch(LaunchKind.PLAIN, "/usr/bin/curl", List.of("http://inventory:8080/items"), Map.of());
        return Stream.of(
                new Case("java: env merged, JAVA_TOOL_OPTIONS appended, target's API_TOKEN wins", java,
                        sessionEnv("JAVA_TOOL_OPTIONS", "-Dfile.encoding=UTF-8"), false, java.argv(),
                        env("JAVA_TOOL_OPTIONS", "-javaagent:/idea/coverage.jar -Dfile.encoding=UTF-8", "API_TOKEN", "remote-secret-token",
                                "SPRING_PROFILES_ACTIVE", "dev", "LD_PRELOAD", BOOT, LaunchPatcher.SOCKET_ENV, SOCK), "auto", null),
                new Case("java: a wrapper the configuration asked for", javaWrapped, sessionEnv(), true,
                        concat(join(false), "--", javaWrapped.argv()), sessionEnv(), "auto", null),
                new Case("maven: env into a transparentFirst session (Maven stays local, its forks join)", maven, sessionEnv(), false,
                        maven.argv(), withAll(sessionEnv(), "MAVEN_OPTS", "-Xmx1g"), "env", true),
                new Case("go: a static binary gets the wrapper", goStatic, sessionEnv(), true,
                        concat(join(false), "--", goStatic.argv()), sessionEnv(), "auto", null),
                new Case("go: a dynamic binary gets env, its own LD_PRELOAD kept after the bootstrap", goDynamic, sessionEnv(), false,
                        goDynamic.argv(), withAll(sessionEnv(), "LD_PRELOAD", BOOT + ":/usr/lib/libjemalloc.so"), "auto", null),
                new Case("go: dlv stays local, the program it starts joins", dlv, sessionEnv(), true,
                        concat(join(true), "--", dlv.argv()), sessionEnv(), "auto", true),
                new Case("python: env, local PYTHONPATH first", python, sessionEnv("PYTHONPATH", "/srv/lib"), false, python.argv(),
                        withAll(sessionEnv(), "PYTHONPATH", "/home/alice/pyservice/src:/srv/lib"), "auto", null),
                new Case("node: the IDE's NODE_OPTIONS kept", node, sessionEnv(), false, node.argv(),
                        withAll(sessionEnv(), "NODE_OPTIONS", "--require /idea/debugConnector.js"), "auto", null),
                new Case("plain: a static program gets the wrapper", plain, sessionEnv(), true, concat(join(false), "--", plain.argv()), sessionEnv(), "auto", null),
                new Case("plain: a dynamic program gets env, its argv untouched", plain, sessionEnv(), false, plain.argv(), sessionEnv(), "auto", null)
        ).map(Arguments::of);
    }

    static Map<String, String> env(String... kv) {
        Map<String, String> m = new LinkedHashMap<>();
        for (int i = 0; i + 1 < kv.length; i += 2) {
            m.put(kv[i], kv[i + 1]);
        }
        return m;
    }

    static Map<String, String> withAll(Map<String, String> base, String... kv) {
        Map<String, String> m = new LinkedHashMap<>(base);
        m.putAll(env(kv));
        return m;
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void patchesEveryKind(Case c) throws PatchException {
        Protocol.Program p = LaunchPatcher.programFor(c.launch);
        assertEquals(c.launch.executable(), p.path);
        assertEquals(c.wantLaunchMode, p.launch);
        assertEquals(c.wantTransparent, p.transparentFirst);

        LaunchPatcher patcher = new LaunchPatcher(GRADLE_DIR);
        Protocol.SessionStartResult r = result(c.session, c.wrapper ? join(Boolean.TRUE.equals(p.transparentFirst)) : null, c.launch);
        Patched once = patcher.patch(c.launch, r);
        assertEquals(c.wantArgv, once.launch().argv());
        assertEquals(c.wantEnv, once.launch().env());
        assertEquals(c.launch.workDir(), once.launch().workDir());
        assertTrue(once.files().isEmpty());

        Patched twice = patcher.patch(once.launch(), r);
        assertEquals(once.launch(), twice.launch(), "patching a patched launch changes nothing");
    }

    @Test
    void gradleTakesTheSessionThroughAnInitScriptOnly() throws PatchException {
        Launch gradle = launch(LaunchKind.GRADLE, "/home/alice/inventory/gradlew", List.of(":app:test", "--tests", "shop.ItemsTest"),
                Map.of("JAVA_TOOL_OPTIONS", "-javaagent:/idea/coverage.jar"));
        Protocol.Program p = LaunchPatcher.programFor(gradle);
        assertEquals("env", p.launch, "Gradle is never wrapped");
        assertNull(p.transparentFirst);

        LaunchPatcher patcher = new LaunchPatcher(GRADLE_DIR);
        Protocol.SessionStartResult r = result(sessionEnv("JAVA_TOOL_OPTIONS", "-Dx=1"), null, gradle);
        Patched once = patcher.patch(gradle, r);
        Path script = GRADLE_DIR.resolve("remocal-session-s7.init.gradle");
        Path envFile = GRADLE_DIR.resolve("remocal-session-s7.env.json");
        assertEquals(List.of("--init-script", script.toString(), ":app:test", "--tests", "shop.ItemsTest"), once.launch().args());
        assertEquals(gradle.env(), once.launch().env(), "the Gradle process (and its daemon) gets nothing");
        assertEquals(gradle.executable(), once.launch().executable());
        assertEquals(Map.of(script, GradleInit.scriptText(envFile), envFile, GradleInit.envJson("s7", r.env)), once.files());
        String json = once.files().get(envFile);
        assertTrue(json.contains("{\"name\":\"LD_PRELOAD\",\"value\":\"" + BOOT + "\",\"how\":\"prepend\",\"separator\":\":\"}"), json);
        assertTrue(json.contains("{\"name\":\"JAVA_TOOL_OPTIONS\",\"value\":\"-Dx=1\",\"how\":\"append\",\"separator\":\" \"}"), json);
        assertTrue(json.contains("{\"name\":\"API_TOKEN\",\"value\":\"remote-secret-token\",\"how\":\"set\",\"separator\":\"\"}"), json);
        String text = once.files().get(script);
        assertTrue(text.contains("new File('" + envFile + "')"), text);
        assertTrue(text.contains("tasks.withType(org.gradle.process.ProcessForkOptions).configureEach") && text.contains("upToDateWhen { false }"), text);

        Patched twice = patcher.patch(once.launch(), r);
        assertEquals(once.launch(), twice.launch());
        assertTrue(twice.files().isEmpty());
    }

    @Test
    void gradleRefusesAWrapperAndAnotherSession() {
        Launch gradle = launch(LaunchKind.GRADLE, "gradle", List.of("run"), Map.of());
        LaunchPatcher patcher = new LaunchPatcher(GRADLE_DIR);
        PatchException e = assertThrows(PatchException.class, () -> patcher.patch(gradle, result(sessionEnv(), join(false), gradle)));
        assertTrue(e.getMessage().contains("init script"), e.getMessage());
        Launch other = gradle.withArgs(List.of("--init-script", "/tmp/remocal-session-s3.init.gradle", "run"));
        e = assertThrows(PatchException.class, () -> patcher.patch(other, result(sessionEnv(), null, other)));
        assertTrue(e.getMessage().contains("another remocal session"), e.getMessage());
    }

    @Test
    void mavenRefusesMvnd() {
        Launch mvnd = launch(LaunchKind.MAVEN, "/opt/mvnd/bin/mvnd", List.of("test"), Map.of());
        PatchException e = assertThrows(PatchException.class, () -> LaunchPatcher.programFor(mvnd));
        assertTrue(e.getMessage().contains("mvn"), e.getMessage());
    }

    @Test
    void aDebuggerNeedsItsWrapper() {
        Launch dlv = new Launch(LaunchKind.GO, "dlv", List.of("exec", "bin/app"), Map.of(), null, true);
        PatchException e = assertThrows(PatchException.class, () -> new LaunchPatcher(GRADLE_DIR).patch(dlv, result(sessionEnv(), null, dlv)));
        assertTrue(e.getMessage().contains("stays local"), e.getMessage());
    }

    @Test
    void anotherSessionIsNeverStacked() {
        LaunchPatcher patcher = new LaunchPatcher(GRADLE_DIR);
        Launch byEnv = launch(LaunchKind.JAVA, "java", List.of("Main"), Map.of(LaunchPatcher.SOCKET_ENV, "/run/user/1000/remocal/sessions/s1.sock"));
        PatchException e = assertThrows(PatchException.class, () -> patcher.patch(byEnv, result(sessionEnv(), null, byEnv)));
        assertTrue(e.getMessage().contains("another remocal session") && e.getMessage().contains("s1.sock"), e.getMessage());
        Launch byWrapper = launch(LaunchKind.PLAIN, REMOCAL, List.of("exec", "--join", "/run/user/1000/remocal/sessions/s1.sock", "--", "curl"), Map.of());
        e = assertThrows(PatchException.class, () -> patcher.patch(byWrapper, result(sessionEnv(), join(false), byWrapper)));
        assertTrue(e.getMessage().contains("already wrapped"), e.getMessage());
    }

    @Test
    void theWrapperFollowsTheLaunchNotTheProgramSentAtStart() throws PatchException {
        // The daemon built the wrapper from the program it was told about; if the run
        // configuration's args changed since, the launch's own argv is what runs.
        Launch sent = launch(LaunchKind.PLAIN, "/usr/bin/curl", List.of("-v"), Map.of());
        Launch now = sent.withArgs(List.of("-v", "http://inventory:8080/"));
        Patched p = new LaunchPatcher(GRADLE_DIR).patch(now, result(sessionEnv(), join(false), sent));
        assertEquals(concat(join(false), "--", now.argv()), p.launch().argv());
    }
}
