package dev.remocal.jetbrains.plugin;

import com.intellij.openapi.actionSystem.AnActionEvent;
import com.intellij.openapi.application.ApplicationManager;
import com.intellij.openapi.project.DumbAwareAction;
import dev.remocal.jetbrains.core.daemon.DaemonException;

/** Drops the daemon connection and connects again (the forwarder replaces an older idle daemon). */
public final class RestartDaemonAction extends DumbAwareAction {
    @Override
    public void actionPerformed(AnActionEvent e) {
        var project = e.getProject();
        if (project == null) {
            return;
        }
        RemocalProject rp = RemocalProject.get(project);
        rp.restart();
        ApplicationManager.getApplication().executeOnPooledThread(() -> {
            try {
                rp.client();
            } catch (DaemonException ex) {
                Notifier.warn(project, ex.getMessage());
            }
        });
    }
}
