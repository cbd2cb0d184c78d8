package dev.remocal.jetbrains.core.daemon;

import com.google.gson.JsonObject;
import dev.remocal.jetbrains.core.protocol.Json;
import dev.remocal.jetbrains.core.protocol.Methods;
import dev.remocal.jetbrains.core.protocol.Protocol;
import dev.remocal.jetbrains.core.rpc.RpcConnection;
import dev.remocal.jetbrains.core.rpc.RpcException;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/** One `remocal daemon --stdio` process, initialized and version-checked. */
final class DaemonProcess {
    /** How much of the forwarder's stderr is kept for error messages. */
    static final int STDERR_TAIL = 4096;

    private final Process process;
    private final RpcConnection rpc;
    private final StringBuilder stderr = new StringBuilder();
    private Protocol.InitializeResult init;

    private DaemonProcess(Process process, RpcConnection.Handler handler, Executor events, DaemonOptions o) {
        this.process = process;
        this.rpc = new RpcConnection(process.getInputStream(), process.getOutputStream(), o.maxFrame(), handler, events, o.log());
    }

    RpcConnection rpc() {
        return rpc;
    }

    Protocol.InitializeResult initializeResult() {
        return init;
    }

    static DaemonProcess start(DaemonOptions o, RpcConnection.Handler handler, Executor events) throws DaemonException {
        ProcessBuilder pb = new ProcessBuilder(o.command());
        pb.environment().putAll(o.env());
        Process proc;
        try {
            proc = pb.start();
        } catch (IOException e) {
            throw new DaemonException("cannot run " + o.command().get(0) + ": " + e.getMessage()
                    + "; install remocal, or set the remocal binary in Settings | Tools | remocal", e);
        }
        DaemonProcess p = new DaemonProcess(proc, handler, events, o);
        p.drainStderr(proc.getErrorStream(), o);
        p.rpc.start();
        try {
            p.initialize(o);
        } catch (DaemonException e) {
            p.destroy();
            throw e;
        }
        return p;
    }

    private void initialize(DaemonOptions o) throws DaemonException {
        Protocol.InitializeParams ip = new Protocol.InitializeParams();
        ip.processId = ProcessHandle.current().pid();
        ip.clientInfo = new Protocol.ClientInfo(o.clientName(), o.clientVersion());
        JsonObject window = new JsonObject();
        window.addProperty("workDoneProgress", true);
        ip.capabilities.add("window", window);
        List<Protocol.WorkspaceFolder> folders = new ArrayList<>();
        for (Path f : o.workspaceFolders()) {
            folders.add(new Protocol.WorkspaceFolder(f.toUri().toString(), String.valueOf(f.getFileName())));
        }
        ip.workspaceFolders = folders;
        String bin = o.command().get(0);
        try {
            var raw = rpc.request(Methods.INITIALIZE, ip, o.connectTimeout()).get(o.connectTimeout().toMillis() + 1000, TimeUnit.MILLISECONDS);
            init = Json.GSON.fromJson(raw, Protocol.InitializeResult.class);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new DaemonException("interrupted while connecting to the remocal daemon", e);
        } catch (ExecutionException | TimeoutException e) {
            Throwable c = e instanceof ExecutionException ? e.getCause() : e;
            String why = c instanceof RpcException re ? re.getMessage() + " (code " + re.code() + ")" : String.valueOf(c.getMessage());
            throw new DaemonException("cannot start or reach the remocal daemon with " + String.join(" ", o.command()) + ": " + why
                    + stderrTail() + "; check that remocal works (remocal version), or restart the daemon", c);
        }
        String reported = init == null || init.capabilities == null || init.capabilities.experimental == null
                || init.capabilities.experimental.remocal == null ? null : init.capabilities.experimental.remocal.protocolVersion;
        String daemonVersion = init == null || init.serverInfo == null ? null : init.serverInfo.version;
        var bad = ProtocolVersion.incompatibility(reported, daemonVersion, bin, o.needed());
        if (bad.isPresent()) {
            throw new IncompatibleDaemonException(bad.get());
        }
        try {
            rpc.notify(Methods.INITIALIZED, new JsonObject());
        } catch (IOException e) {
            throw new DaemonException("the remocal daemon went away right after initialize: " + e.getMessage() + stderrTail(), e);
        }
    }

    /** The forwarder logs why it could not reach or start the daemon on stderr: keep its tail. */
    private void drainStderr(InputStream err, DaemonOptions o) {
        Thread t = new Thread(() -> {
            byte[] buf = new byte[4096];
            try {
                int n;
                while ((n = err.read(buf)) > 0) {
                    String s = new String(buf, 0, n, StandardCharsets.UTF_8);
                    synchronized (stderr) {
                        stderr.append(s);
                        if (stderr.length() > STDERR_TAIL) {
                            stderr.delete(0, stderr.length() - STDERR_TAIL);
                        }
                    }
                    o.log().accept("daemon: " + s.stripTrailing());
                }
            } catch (IOException ignored) {
                // the process ended
            }
        }, "remocal-daemon-stderr");
        t.setDaemon(true);
        t.start();
    }

    /** "; it said: ..." with the forwarder's last stderr, or "". */
    String stderrTail() {
        synchronized (stderr) {
            String s = stderr.toString().strip();
            return s.isEmpty() ? "" : "; it said: " + s;
        }
    }

    void destroy() {
        rpc.close();
        process.destroy();
        try {
            if (!process.waitFor(2, TimeUnit.SECONDS)) {
                process.destroyForcibly();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            process.destroyForcibly();
        }
    }
}
