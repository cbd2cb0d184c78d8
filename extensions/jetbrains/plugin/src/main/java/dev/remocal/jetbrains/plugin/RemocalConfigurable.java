package dev.remocal.jetbrains.plugin;

import com.intellij.openapi.fileChooser.FileChooserDescriptorFactory;
import com.intellij.openapi.options.Configurable;
import com.intellij.openapi.ui.TextFieldWithBrowseButton;
import com.intellij.ui.components.JBTextField;
import com.intellij.util.ui.FormBuilder;

import javax.swing.JComponent;

/** The settings page: binary path and default target; changing the binary reconnects open projects. */
public final class RemocalConfigurable implements Configurable {
    private final TextFieldWithBrowseButton binary = new TextFieldWithBrowseButton();
    private final JBTextField target = new JBTextField();
    private final JBTextField namespace = new JBTextField();

    @Override
    public String getDisplayName() {
        return "remocal";
    }

    @Override
    public JComponent createComponent() {
        binary.addBrowseFolderListener("remocal Binary", "The remocal executable (empty: remocal from PATH)", null,
                FileChooserDescriptorFactory.createSingleFileNoJarsDescriptor());
        target.getEmptyText().setText("e.g. deployment/api, pid/4242");
        return FormBuilder.createFormBuilder()
                .addLabeledComponent("remocal binary:", binary)
                .addLabeledComponent("Default target:", target)
                .addLabeledComponent("Default namespace:", namespace)
                .addComponentFillVertically(new javax.swing.JPanel(), 0)
                .getPanel();
    }

    @Override
    public boolean isModified() {
        RemocalSettings.Data d = RemocalSettings.get().getState();
        return !binary.getText().equals(d.binaryPath) || !target.getText().equals(d.defaultTarget) || !namespace.getText().equals(d.defaultNamespace);
    }

    @Override
    public void apply() {
        RemocalSettings.Data d = RemocalSettings.get().getState();
        boolean newBinary = !binary.getText().equals(d.binaryPath);
        d.binaryPath = binary.getText().trim();
        d.defaultTarget = target.getText().trim();
        d.defaultNamespace = namespace.getText().trim();
        if (newBinary) {
            for (var p : com.intellij.openapi.project.ProjectManager.getInstance().getOpenProjects()) {
                RemocalProject.get(p).restart();
            }
        }
    }

    @Override
    public void reset() {
        RemocalSettings.Data d = RemocalSettings.get().getState();
        binary.setText(d.binaryPath);
        target.setText(d.defaultTarget);
        namespace.setText(d.defaultNamespace);
    }
}
