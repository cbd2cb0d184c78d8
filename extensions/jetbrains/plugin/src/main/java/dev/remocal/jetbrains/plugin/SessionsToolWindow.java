package dev.remocal.jetbrains.plugin;

import com.intellij.openapi.application.ApplicationManager;
import com.intellij.openapi.project.DumbAware;
import com.intellij.openapi.project.Project;
import com.intellij.openapi.wm.ToolWindow;
import com.intellij.openapi.wm.ToolWindowFactory;
import com.intellij.ui.components.JBList;
import com.intellij.ui.components.JBScrollPane;
import com.intellij.ui.content.ContentFactory;
import dev.remocal.jetbrains.core.protocol.Protocol;
import dev.remocal.jetbrains.core.sessions.SessionStore;

import javax.swing.DefaultListModel;
import java.util.function.Consumer;

/**
 * The remocal tool window: this daemon's sessions, everybody's operator sessions and the locks
 * they hold, the queues each session splits, and recent conflicts, as lines rebuilt from the
 * SessionStore on every change. Double-click stops a session of mine, or kills an operator
 * session (as RBAC allows).
 */
public final class SessionsToolWindow implements ToolWindowFactory, DumbAware {
    /** A line and what double-clicking it does (null: nothing). */
    private record Line(String text, Consumer<Project> action) {
        @Override
        public String toString() {
            return text;
        }
    }

    @Override
    public void createToolWindowContent(Project project, ToolWindow tw) {
        DefaultListModel<Line> lines = new DefaultListModel<>();
        JBList<Line> list = new JBList<>(lines);
        SessionStore store = RemocalProject.get(project).store();
        Runnable rebuild = () -> ApplicationManager.getApplication().invokeLater(() -> fill(lines, store));
        store.addListener(e -> rebuild.run());
        list.addMouseListener(new java.awt.event.MouseAdapter() {
            @Override
            public void mouseClicked(java.awt.event.MouseEvent e) {
                Line l = list.getSelectedValue();
                if (e.getClickCount() == 2 && l != null && l.action() != null) {
                    l.action().accept(project);
                }
            }
        });
        fill(lines, store);
        tw.getContentManager().addContent(ContentFactory.getInstance().createContent(new JBScrollPane(list), "Sessions", false));
    }

    private static void fill(DefaultListModel<Line> lines, SessionStore store) {
        lines.clear();
        java.util.List<SessionStore.QueueSplit> queues = store.queueSplits();
        lines.addElement(new Line("My sessions (double-click to stop)", null));
        for (Protocol.Session s : store.mine()) {
            String text = "  " + s.id + (s.label == null ? "" : " " + s.label) + " — " + (s.resolved == null ? s.target : s.resolved)
                    + ", " + s.incoming + ", " + s.state + (s.reason == null ? "" : " (" + s.reason + ")") + ", by " + s.owner + " since " + s.startedAt;
            lines.addElement(new Line(text, p -> stop(p, s.id)));
            for (SessionStore.QueueSplit q : queues) {
                if (q.mine() && q.session().equals(s.id)) {
                    StringBuilder env = new StringBuilder();
                    q.env().forEach((k, v) -> env.append(' ').append(k).append('=').append(v));
                    lines.addElement(new Line("    " + q.text() + (env.length() == 0 ? "" : ":" + env), null));
                }
            }
        }
        lines.addElement(new Line("Everybody's sessions (double-click to end one)", null));
        for (Protocol.RemoteSession r : store.remote()) {
            String text = "  " + r.user + " (" + r.client + (r.tool == null ? "" : ", " + r.tool) + ") on " + r.target + " in " + r.namespace
                    + ", " + r.phase + ", since " + r.since;
            lines.addElement(new Line(text, p -> kill(p, r.namespace, r.name)));
            for (SessionStore.QueueSplit q : queues) {
                if (!q.mine() && q.session().equals(r.namespace + "/" + r.name)) {
                    lines.addElement(new Line("    " + q.text() + " since " + q.since(), null));
                }
            }
        }
        for (SessionStore.Lock l : store.locks()) {
            String filter = l.filter() == null ? "without a filter" : "with " + dev.remocal.jetbrains.core.protocol.Json.GSON.toJson(l.filter());
            lines.addElement(new Line("  🔒 port " + l.port() + " on " + l.target() + " is stolen by " + l.user() + " " + filter + " since " + l.since(), null));
        }
        lines.addElement(new Line("Conflicts", null));
        for (Protocol.Conflict c : store.conflicts()) {
            lines.addElement(new Line("  ⚠ " + c.message, null));
        }
    }

    static void stop(Project project, String id) {
        ApplicationManager.getApplication().executeOnPooledThread(() -> {
            try {
                RemocalProject.get(project).client().stopSession(id).get();
            } catch (Exception e) {
                Notifier.warn(project, "Stopping session " + id + ": " + e.getMessage());
            }
        });
    }

    static void kill(Project project, String namespace, String name) {
        ApplicationManager.getApplication().executeOnPooledThread(() -> {
            try {
                RemocalProject.get(project).client().killSession(namespace, name).get();
            } catch (Exception e) {
                // forbidden / no_operator: the daemon's message says which verb is missing, or why.
                Notifier.warn(project, "Ending " + namespace + "/" + name + ": " + (e.getCause() == null ? e.getMessage() : e.getCause().getMessage()));
            }
        });
    }
}
