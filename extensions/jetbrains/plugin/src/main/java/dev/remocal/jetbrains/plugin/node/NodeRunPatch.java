package dev.remocal.jetbrains.plugin.node;

import com.intellij.execution.ExecutionException;
import com.intellij.execution.runners.ExecutionEnvironment;
import com.intellij.javascript.nodejs.execution.AbstractNodeTargetRunProfile;
import com.intellij.javascript.nodejs.execution.runConfiguration.AbstractNodeRunConfigurationExtension;
import com.intellij.javascript.nodejs.execution.runConfiguration.NodeRunConfigurationLaunchSession;
import com.jetbrains.nodejs.run.NodeJsRunConfiguration;
import dev.remocal.jetbrains.core.launch.Launch;
import dev.remocal.jetbrains.core.launch.LaunchKind;
import dev.remocal.jetbrains.core.launch.Patched;
import dev.remocal.jetbrains.plugin.Launches;
import dev.remocal.jetbrains.plugin.RemocalProject;

import java.util.List;
import java.util.Map;

/**
 * Node.js configurations: env only (node is dynamically linked; NODE_OPTIONS the IDE's debugger
 * uses is merged, not replaced). The platform gives this extension the configuration rather than
 * the command line, so the session's env is set on it for this launch and the configuration's own
 * env is put back as soon as the launch is prepared.
 */
public final class NodeRunPatch extends AbstractNodeRunConfigurationExtension {
    @Override
    public boolean isApplicableFor(AbstractNodeTargetRunProfile profile) {
        return profile instanceof NodeJsRunConfiguration;
    }

    @Override
    public NodeRunConfigurationLaunchSession createLaunchSession(AbstractNodeTargetRunProfile profile, ExecutionEnvironment environment)
            throws ExecutionException {
        NodeJsRunConfiguration c = (NodeJsRunConfiguration) profile;
        Map<String, String> own = c.getEnvs();
        Launch launch = new Launch(LaunchKind.NODE, "node", List.of(c.getInputPath() == null ? "" : c.getInputPath()),
                Launches.env(own, c.isPassParentEnvs()), c.getWorkingDirectory());
        Patched patched = RemocalProject.get(c.getProject()).runInSession(launch, "run: " + c.getName());
        if (patched == null) {
            return null;
        }
        c.setEnvs(patched.launch().env());
        com.intellij.openapi.application.ApplicationManager.getApplication().invokeLater(() -> c.setEnvs(own));
        return null;
    }

    @Override
    public String getEditorTitle() {
        return null;
    }
}
