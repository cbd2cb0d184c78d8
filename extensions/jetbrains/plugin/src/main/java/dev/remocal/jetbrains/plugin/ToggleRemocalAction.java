package dev.remocal.jetbrains.plugin;

import com.intellij.openapi.actionSystem.ActionUpdateThread;
import com.intellij.openapi.actionSystem.AnActionEvent;
import com.intellij.openapi.actionSystem.ToggleAction;
import com.intellij.openapi.project.DumbAware;
import dev.remocal.jetbrains.core.targets.TargetChoice;

/** The toolbar toggle: on, every run and debug configuration runs in the chosen target's context. */
public final class ToggleRemocalAction extends ToggleAction implements DumbAware {
    @Override
    public boolean isSelected(AnActionEvent e) {
        return e.getProject() != null && RemocalProject.get(e.getProject()).enabled();
    }

    @Override
    public void setSelected(AnActionEvent e, boolean on) {
        if (e.getProject() == null) {
            return;
        }
        RemocalProject rp = RemocalProject.get(e.getProject());
        if (on && rp.target() == null && !new TargetChooserDialog(e.getProject()).showAndGet()) {
            return; // no target, stay off
        }
        rp.setEnabled(on);
    }

    @Override
    public void update(AnActionEvent e) {
        super.update(e);
        if (e.getProject() == null) {
            return;
        }
        RemocalProject rp = RemocalProject.get(e.getProject());
        TargetChoice t = rp.target();
        e.getPresentation().setText(!rp.enabled() ? "remocal: off" : "remocal: " + (t == null ? "no target" : t.display()));
    }

    @Override
    public ActionUpdateThread getActionUpdateThread() {
        return ActionUpdateThread.BGT;
    }
}
