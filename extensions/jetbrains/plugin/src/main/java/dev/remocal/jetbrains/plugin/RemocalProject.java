package dev.remocal.jetbrains.plugin;

import com.intellij.execution.ExecutionException;
import com.intellij.execution.process.ProcessAdapter;
import com.intellij.execution.process.ProcessEvent;
import com.intellij.execution.process.ProcessHandler;
import com.intellij.openapi.Disposable;
import com.intellij.openapi.application.ApplicationInfo;
import com.intellij.openapi.application.PathManager;
import com.intellij.openapi.components.PersistentStateComponent;
import com.intellij.openapi.components.State;
import com.intellij.openapi.components.Storage;
import com.intellij.openapi.components.StoragePathMacros;
import com.intellij.openapi.diagnostic.Logger;
import com.intellij.openapi.progress.ProgressManager;
import com.intellij.openapi.project.Project;
import dev.remocal.jetbrains.core.daemon.DaemonClient;
import dev.remocal.jetbrains.core.daemon.DaemonException;
import dev.remocal.jetbrains.core.daemon.DaemonOptions;
import dev.remocal.jetbrains.core.launch.Launch;
import dev.remocal.jetbrains.core.launch.LaunchPatcher;
import dev.remocal.jetbrains.core.launch.PatchException;
import dev.remocal.jetbrains.core.launch.Patched;
import dev.remocal.jetbrains.core.protocol.Protocol;
import dev.remocal.jetbrains.core.sessions.SessionFeed;
import dev.remocal.jetbrains.core.sessions.SessionStore;
import dev.remocal.jetbrains.core.targets.RecentTargets;
import dev.remocal.jetbrains.core.targets.TargetChoice;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * One project's remocal: on/off and the target (remembered in the workspace file), the daemon
 * connection and the session store the tool window shows, and the one entry point every
 * product's run patch calls: {@link #runInSession}.
 */
@State(name = "remocal", storages = @Storage(StoragePathMacros.WORKSPACE_FILE))
public final class RemocalProject implements PersistentStateComponent<RemocalProject.Data>, Disposable {
    private static final Logger LOG = Logger.getInstance(RemocalProject.class);

    public static final class Data {
        public boolean enabled;
        public String ref;
        public String namespace;
        public String container;
        public String provider;
        public List<String> recent = new ArrayList<>();
    }

    private final Project project;
    private final SessionStore store = new SessionStore();
    private Data data = new Data();
    private DaemonClient client;

    public RemocalProject(Project project) {
        this.project = project;
        store.addListener(new Notifier(project));
    }

    public static RemocalProject get(Project p) {
        return p.getService(RemocalProject.class);
    }

    public boolean enabled() {
        return data.enabled;
    }

    public void setEnabled(boolean on) {
        data.enabled = on;
    }

    public TargetChoice target() {
        if (data.ref == null || data.ref.isEmpty()) {
            RemocalSettings.Data d = RemocalSettings.get().getState();
            return d.defaultTarget.isEmpty() ? null : new TargetChoice(d.defaultTarget, d.defaultNamespace.isEmpty() ? null : d.defaultNamespace, null, null);
        }
        return new TargetChoice(data.ref, data.namespace, data.container, data.provider);
    }

    public void setTarget(TargetChoice c) {
        data.ref = c.ref();
        data.namespace = c.namespace();
        data.container = c.container();
        data.provider = c.provider();
        RecentTargets r = recent();
        r.add(c);
        data.recent = new ArrayList<>(r.encode());
    }

    public RecentTargets recent() {
        return RecentTargets.decode(data.recent);
    }

    public SessionStore store() {
        return store;
    }

    /** The connected daemon client, connecting first if needed. Blocks: not on the EDT. */
    public synchronized DaemonClient client() throws DaemonException {
        if (client == null) {
            String ide = ApplicationInfo.getInstance().getFullApplicationName();
            String base = project.getBasePath();
            client = new DaemonClient(DaemonOptions.of(RemocalSettings.get().binary(), ide, "0.3.0",
                    base == null ? List.of() : List.of(Path.of(base)), LOG::info));
            SessionFeed.attach(client, store, LOG::info);
            client.addListener(new DaemonClient.Listener() {
                @Override
                public void onNotification(String method, com.google.gson.JsonElement params) {
                    // The daemon's notes (which replica a session uses) are for the user.
                    dev.remocal.jetbrains.core.protocol.Progress.message(method, params)
                            .filter(m -> m.type <= 3)
                            .ifPresent(m -> Notifier.show(project, m.message, m.type == 3
                                    ? com.intellij.notification.NotificationType.INFORMATION : com.intellij.notification.NotificationType.WARNING));
                }
            });
        }
        client.connect();
        return client;
    }

    /** Drops the connection; the next use connects again (with the binary the settings name now). */
    public synchronized void restart() {
        if (client != null) {
            client.close();
            client = null;
        }
    }

    /**
     * When remocal is on: starts a session for the launch and returns it patched; null when off.
     * Cancelling the progress cancels the start on the daemon. The session ends with the process
     * (see {@link #endWith}). Blocks: run patches call it while the IDE prepares the process.
     */
    public Patched runInSession(Launch launch, String label) throws ExecutionException {
        if (!enabled()) {
            return null;
        }
        TargetChoice t = target();
        if (t == null) {
            throw new ExecutionException("remocal is on but no target is chosen: choose one with remocal: Choose Target…, or turn remocal off in the toolbar");
        }
        try {
            Protocol.SessionStartParams p = new Protocol.SessionStartParams();
            p.target = t.sessionTarget();
            p.namespace = t.namespace() == null || "local".equals(t.namespace()) ? null : t.namespace();
            p.workspaceFolder = project.getBasePath();
            p.program = LaunchPatcher.programFor(launch);
            p.label = label;
            String token = "jetbrains-" + java.util.UUID.randomUUID();
            p.workDoneToken = new com.google.gson.JsonPrimitive(token);
            DaemonClient c = client();
            var indicator = ProgressManager.getInstance().getProgressIndicator();
            DaemonClient.Listener progress = new DaemonClient.Listener() {
                @Override
                public void onNotification(String method, com.google.gson.JsonElement params) {
                    dev.remocal.jetbrains.core.protocol.Progress.of(method, params, token)
                            .filter(r -> r.message() != null && indicator != null)
                            .ifPresent(r -> indicator.setText2("remocal: " + r.message()));
                }
            };
            c.addListener(progress);
            Protocol.SessionStartResult res;
            try {
                res = awaitCancellable(c.startSession(p));
            } finally {
                c.removeListener(progress);
            }
            res.warnings.forEach(w -> Notifier.warn(project, w));
            Patched patched = new LaunchPatcher(Path.of(PathManager.getSystemPath(), "remocal", "gradle")).patch(launch, res);
            for (Map.Entry<Path, String> f : patched.files().entrySet()) {
                Files.createDirectories(f.getKey().getParent());
                Files.writeString(f.getKey(), f.getValue());
            }
            pending.set(res.session.id);
            return patched;
        } catch (PatchException | DaemonException e) {
            throw new ExecutionException(e.getMessage(), e);
        } catch (IOException e) {
            throw new ExecutionException("remocal could not write its Gradle init script: " + e.getMessage(), e);
        } catch (Exception e) {
            throw new ExecutionException("remocal could not start a session on " + t.display() + ": " + e.getMessage(), e);
        }
    }

    /** The session runInSession just started on this thread, for endWith. */
    private final ThreadLocal<String> pending = new ThreadLocal<>();

    public String takePendingSession() {
        String id = pending.get();
        pending.remove();
        return id;
    }

    /** Stops the session when the run's process ends. */
    public void endWith(ProcessHandler handler, String sessionId) {
        if (sessionId == null) {
            return;
        }
        handler.addProcessListener(new ProcessAdapter() {
            @Override
            public void processTerminated(ProcessEvent event) {
                DaemonClient c = client;
                if (c != null) {
                    c.stopSession(sessionId).exceptionally(e -> {
                        LOG.info("stopping session " + sessionId + ": " + e.getMessage());
                        return null;
                    });
                }
            }
        });
    }

    private static <T> T awaitCancellable(CompletableFuture<T> f) throws Exception {
        while (true) {
            try {
                ProgressManager.checkCanceled();
            } catch (RuntimeException cancelled) {
                f.cancel(true); // $/cancelRequest to the daemon
                throw cancelled;
            }
            try {
                return f.get(100, TimeUnit.MILLISECONDS);
            } catch (java.util.concurrent.TimeoutException notYet) {
                // keep polling the progress indicator
            } catch (java.util.concurrent.ExecutionException e) {
                throw e.getCause() instanceof Exception inner ? inner : e;
            }
        }
    }

    @Override
    public Data getState() {
        return data;
    }

    @Override
    public void loadState(Data state) {
        data = state;
    }

    @Override
    public void dispose() {
        restart();
    }
}
