package dev.remocal.jetbrains.core.it;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/** A started process's output lines, kept (bounded) for the test to wait on. */
final class ProcessLines implements AutoCloseable {
    static final int MAX_LINES = 2000;
    static final int MAX_LINE = 8192;

    final Process process;
    private final List<String> lines = new ArrayList<>();

    ProcessLines(ProcessBuilder pb) throws IOException {
        process = pb.redirectErrorStream(true).start();
        Thread t = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) {
                    System.out.println("  program: " + line);
                    synchronized (lines) {
                        if (lines.size() < MAX_LINES) {
                            lines.add(line.length() > MAX_LINE ? line.substring(0, MAX_LINE) : line);
                        }
                    }
                }
            } catch (IOException ignored) {
                // the process ended
            }
        }, "test-program-output");
        t.setDaemon(true);
        t.start();
    }

    List<String> lines() {
        synchronized (lines) {
            return List.copyOf(lines);
        }
    }

    /** Waits for a line starting with prefix; returns it. */
    String await(String prefix, Duration timeout) throws InterruptedException {
        String[] found = new String[1];
        Poll.until(timeout, "printing a line starting with \"" + prefix + "\"", () -> {
            for (String l : lines()) {
                if (l.startsWith(prefix)) {
                    found[0] = l;
                    return null;
                }
            }
            return process.isAlive() ? "output so far: " + lines() : "the program exited with " + process.exitValue() + ": " + lines();
        });
        return found[0];
    }

    @Override
    public void close() {
        process.descendants().forEach(ProcessHandle::destroyForcibly);
        process.destroyForcibly();
        try {
            process.waitFor();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
