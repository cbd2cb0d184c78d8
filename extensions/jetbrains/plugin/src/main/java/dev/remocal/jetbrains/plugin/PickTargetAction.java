package dev.remocal.jetbrains.plugin;

import com.intellij.openapi.actionSystem.AnActionEvent;
import com.intellij.openapi.project.DumbAwareAction;

/** Opens the target chooser. */
public final class PickTargetAction extends DumbAwareAction {
    @Override
    public void actionPerformed(AnActionEvent e) {
        if (e.getProject() != null) {
            new TargetChooserDialog(e.getProject()).show();
        }
    }
}
