package dev.remocal.jetbrains.core.it;

import javax.tools.JavaCompiler;
import javax.tools.ToolProvider;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The program the integration test launches in a session, compiled at test time: it prints the
 * target's variable and file as it sees them, then either serves HTTP on the target's port
 * ("serve"), exits ("once"), or starts itself again as a child and relays its output ("fork", how
 * Maven forks a test JVM).
 */
final class TestProgram {
    private TestProgram() {}

    static final String CLASS = "RemocalProbe";
    static final String ANSWER = "stolen by the JetBrains core's test program";

    private static final String SOURCE = """
            import com.sun.net.httpserver.HttpServer;
            import java.io.*;
            import java.net.InetSocketAddress;
            import java.nio.charset.StandardCharsets;
            import java.nio.file.*;

            public class %s {
                public static void main(String[] a) throws Exception {
                    String who = a[0].equals("fork") ? "parent" : "child";
                    System.out.println(who + " env API_TOKEN=" + System.getenv("API_TOKEN"));
                    Path f = Path.of(a[1]);
                    String file = Files.exists(f) ? Files.readString(f).replace('\\n', ' ') : "missing";
                    System.out.println(who + " file " + file);
                    System.out.flush();
                    switch (a[0]) {
                        case "once" -> {}
                        case "fork" -> {
                            String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
                            Process p = new ProcessBuilder(java, "-cp", System.getProperty("java.class.path"), "%s", "once", a[1])
                                    .redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.INHERIT).start();
                            System.exit(p.waitFor());
                        }
                        case "serve" -> {
                            HttpServer s = HttpServer.create(new InetSocketAddress(Integer.parseInt(a[2])), 16);
                            s.createContext("/", x -> {
                                byte[] b = ("%s: " + x.getRequestURI().getPath()).getBytes(StandardCharsets.UTF_8);
                                x.sendResponseHeaders(200, b.length);
                                try (OutputStream o = x.getResponseBody()) { o.write(b); }
                            });
                            s.start();
                            System.out.println("listening on " + a[2]);
                            System.out.flush();
                        }
                        default -> throw new IllegalArgumentException(a[0]);
                    }
                }
            }
            """.formatted(CLASS, CLASS, ANSWER);

    /** Compiles the program into dir; returns dir (its classpath). */
    static Path compile(Path dir) throws IOException {
        Path src = dir.resolve(CLASS + ".java");
        Files.writeString(src, SOURCE);
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        if (javac == null) {
            throw new IllegalStateException("no Java compiler in " + System.getProperty("java.home") + "; run the tests with a JDK (openjdk-17-jdk-headless)");
        }
        ByteArrayOutputStreamHolder err = new ByteArrayOutputStreamHolder();
        int rc = javac.run(null, null, err.stream, "-d", dir.toString(), src.toString());
        if (rc != 0) {
            throw new IllegalStateException("compiling the test program failed:\n" + err);
        }
        return dir;
    }

    private static final class ByteArrayOutputStreamHolder {
        final java.io.ByteArrayOutputStream stream = new java.io.ByteArrayOutputStream();

        @Override
        public String toString() {
            return stream.toString(java.nio.charset.StandardCharsets.UTF_8);
        }
    }
}
