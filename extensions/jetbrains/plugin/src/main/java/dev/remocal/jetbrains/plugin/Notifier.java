package dev.remocal.jetbrains.plugin;

import com.intellij.notification.NotificationAction;
import com.intellij.notification.NotificationGroupManager;
import com.intellij.notification.NotificationType;
import com.intellij.openapi.project.Project;
import com.intellij.openapi.wm.ToolWindowManager;
import dev.remocal.jetbrains.core.sessions.SessionStore;

/** Balloons for what the user must know: a session degraded or ended, a port conflict, a lock taken. */
final class Notifier implements SessionStore.Listener {
    private final Project project;

    Notifier(Project project) {
        this.project = project;
    }

    static void warn(Project project, String message) {
        show(project, message, NotificationType.WARNING);
    }

    static void show(Project project, String message, NotificationType type) {
        NotificationGroupManager.getInstance().getNotificationGroup("remocal")
                .createNotification("remocal", message, type).notify(project);
    }

    @Override
    public void onEvent(SessionStore.Event e) {
        String text = switch (e.kind()) {
            case SESSION_CHANGED -> "degraded".equals(e.session().state)
                    ? "Session " + label(e) + " is degraded: " + e.session().reason : null;
            case SESSION_ENDED -> e.session().reason != null && !"stopped".equals(e.session().reason)
                    ? "Session " + label(e) + " ended: " + e.session().reason : null;
            case CONFLICT, TAKEN -> e.conflict().message;
            default -> null;
        };
        if (text == null) {
            return;
        }
        var n = NotificationGroupManager.getInstance().getNotificationGroup("remocal")
                .createNotification("remocal", text, e.kind() == SessionStore.Kind.SESSION_CHANGED ? NotificationType.WARNING : NotificationType.INFORMATION);
        n.addAction(NotificationAction.createSimpleExpiring("Show sessions", () -> {
            var tw = ToolWindowManager.getInstance(project).getToolWindow("remocal");
            if (tw != null) {
                tw.show();
            }
        }));
        if (e.session() != null && e.kind() == SessionStore.Kind.SESSION_CHANGED) {
            String id = e.session().id;
            n.addAction(NotificationAction.createSimpleExpiring("Stop session", () -> SessionsToolWindow.stop(project, id)));
        }
        n.notify(project);
    }

    private static String label(SessionStore.Event e) {
        return e.session().label != null ? e.session().id + " (" + e.session().label + ")" : e.session().id;
    }
}
