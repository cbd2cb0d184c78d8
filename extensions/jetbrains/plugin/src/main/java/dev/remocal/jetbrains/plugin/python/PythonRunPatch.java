package dev.remocal.jetbrains.plugin.python;

import com.intellij.execution.ExecutionException;
import com.intellij.execution.configurations.GeneralCommandLine;
import com.intellij.execution.configurations.RunnerSettings;
import com.intellij.execution.process.ProcessHandler;
import com.intellij.openapi.util.Key;
import com.jetbrains.python.run.AbstractPythonRunConfiguration;
import com.jetbrains.python.run.PythonRunConfigurationExtension;
import dev.remocal.jetbrains.core.launch.LaunchKind;
import dev.remocal.jetbrains.core.launch.Patched;
import dev.remocal.jetbrains.plugin.Launches;
import dev.remocal.jetbrains.plugin.RemocalProject;

/** PyCharm: the interpreter's command line (the debugger, pydevd, runs inside it and connects to the IDE on localhost). */
public final class PythonRunPatch extends PythonRunConfigurationExtension {
    private static final Key<String> SESSION = Key.create("remocal.session");

    @Override
    protected boolean isApplicableFor(AbstractPythonRunConfiguration<?> configuration) {
        return true;
    }

    @Override
    protected boolean isEnabledFor(AbstractPythonRunConfiguration<?> configuration, RunnerSettings runnerSettings) {
        return RemocalProject.get(configuration.getProject()).enabled();
    }

    @Override
    protected void patchCommandLine(AbstractPythonRunConfiguration<?> configuration, RunnerSettings runnerSettings,
                                    GeneralCommandLine cmd, String runnerId) throws ExecutionException {
        RemocalProject rp = RemocalProject.get(configuration.getProject());
        Patched patched = rp.runInSession(Launches.from(LaunchKind.PYTHON, cmd, false), runnerId + ": " + configuration.getName());
        if (patched != null) {
            Launches.applyTo(cmd, patched.launch());
            configuration.putUserData(SESSION, rp.takePendingSession());
        }
    }

    @Override
    protected void attachToProcess(AbstractPythonRunConfiguration<?> configuration, ProcessHandler handler, RunnerSettings runnerSettings) {
        RemocalProject.get(configuration.getProject()).endWith(handler, configuration.getUserData(SESSION));
        configuration.putUserData(SESSION, null);
    }
}
