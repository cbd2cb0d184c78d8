package dev.remocal.jetbrains.plugin.go;

import com.goide.execution.GoRunConfigurationBase;
import com.goide.execution.GoRunningState;
import com.goide.execution.extension.GoRunConfigurationExtension;
import com.intellij.execution.ExecutionException;
import com.intellij.execution.configurations.RunnerSettings;
import com.intellij.execution.process.ProcessHandler;
import com.intellij.execution.target.TargetedCommandLineBuilder;
import com.intellij.execution.target.value.TargetValue;
import com.intellij.openapi.util.Key;
import dev.remocal.jetbrains.core.launch.Launch;
import dev.remocal.jetbrains.core.launch.LaunchKind;
import dev.remocal.jetbrains.core.launch.Patched;
import dev.remocal.jetbrains.plugin.Launches;
import dev.remocal.jetbrains.plugin.RemocalProject;

import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * GoLand: the built binary, or dlv when debugging (dlv stays local; the program it starts
 * joins). The daemon chooses env or the wrapper: Go binaries are often static.
 */
public final class GoRunPatch extends GoRunConfigurationExtension {
    private static final Key<String> SESSION = Key.create("remocal.session");

    @Override
    public boolean isApplicableFor(GoRunConfigurationBase<?> configuration) {
        return true;
    }

    @Override
    public boolean isEnabledFor(GoRunConfigurationBase<?> configuration, RunnerSettings runnerSettings) {
        return RemocalProject.get(configuration.getProject()).enabled();
    }

    @Override
    protected void patchCommandLine(GoRunConfigurationBase<?> configuration, RunnerSettings runnerSettings, TargetedCommandLineBuilder cmd,
                                    String runnerId, GoRunningState<? extends GoRunConfigurationBase<?>> state,
                                    GoRunningState.CommandLineType type) throws ExecutionException {
        if (type != GoRunningState.CommandLineType.RUN) {
            return; // go build and go test's compile step stay local
        }
        String exe = local(cmd.getExePath());
        List<String> args = cmd.getParameters().stream().map(GoRunPatch::local).toList();
        Launch launch = new Launch(LaunchKind.GO, exe, args, Launches.env(configuration.getCustomEnvironment(), configuration.isPassParentEnvironment()),
                configuration.getWorkingDirectory(), state.isDebug());
        RemocalProject rp = RemocalProject.get(configuration.getProject());
        Patched patched = rp.runInSession(launch, (state.isDebug() ? "debug: " : "run: ") + configuration.getName());
        if (patched == null) {
            return;
        }
        patched.launch().env().forEach(cmd::addEnvironmentVariable);
        if (!patched.launch().executable().equals(exe)) {
            // The wrapper: its prefix goes before the original exe, which becomes a parameter.
            List<String> argv = patched.launch().argv();
            cmd.setExePath(argv.get(0));
            for (int i = 1; i < argv.size() - args.size(); i++) {
                cmd.addParameterAt(i - 1, argv.get(i));
            }
        }
        configuration.putUserData(SESSION, rp.takePendingSession());
    }

    @Override
    protected void attachToProcess(GoRunConfigurationBase<?> configuration, ProcessHandler handler, RunnerSettings runnerSettings) {
        RemocalProject.get(configuration.getProject()).endWith(handler, configuration.getUserData(SESSION));
        configuration.putUserData(SESSION, null);
    }

    private static String local(TargetValue<String> v) {
        try {
            return v.getLocalValue().blockingGet(5, TimeUnit.SECONDS);
        } catch (Exception e) {
            throw new IllegalStateException("remocal: cannot read the Go command line: " + e.getMessage(), e);
        }
    }
}
