package dev.remocal.jetbrains.plugin.java;

import com.intellij.execution.ExecutionException;
import com.intellij.execution.RunConfigurationExtension;
import com.intellij.execution.configurations.DebuggingRunnerData;
import com.intellij.execution.configurations.JavaParameters;
import com.intellij.execution.configurations.RunConfigurationBase;
import com.intellij.execution.configurations.RunnerSettings;
import com.intellij.execution.process.ProcessHandler;
import com.intellij.openapi.util.Key;
import dev.remocal.jetbrains.core.launch.Launch;
import dev.remocal.jetbrains.core.launch.LaunchKind;
import dev.remocal.jetbrains.core.launch.Patched;
import dev.remocal.jetbrains.plugin.Launches;
import dev.remocal.jetbrains.plugin.RemocalProject;

import java.util.ArrayList;
import java.util.List;

/**
 * Java application, test and Spring Boot configurations, and Maven's (also started from Java
 * parameters): the session's env goes into the JVM's (for Maven: into a transparentFirst session,
 * so Maven stays local and what it forks joins; see docs/jetbrains.md).
 */
public final class JavaRunPatch extends RunConfigurationExtension {
    private static final Key<String> SESSION = Key.create("remocal.session");
    private static final String MAVEN = "org.jetbrains.idea.maven.execution.MavenRunConfiguration";

    @Override
    public boolean isApplicableFor(RunConfigurationBase<?> configuration) {
        return true;
    }

    @Override
    public <T extends RunConfigurationBase<?>> void updateJavaParameters(T configuration, JavaParameters params, RunnerSettings runnerSettings)
            throws ExecutionException {
        LaunchKind kind = configuration.getClass().getName().equals(MAVEN) ? LaunchKind.MAVEN : LaunchKind.JAVA;
        String java = params.getJdk() == null ? "java" : params.getJdk().getHomePath() + "/bin/java";
        List<String> args = new ArrayList<>(params.getVMParametersList().getList());
        if (params.getMainClass() != null) {
            args.add(params.getMainClass());
        }
        args.addAll(params.getProgramParametersList().getList());
        Launch launch = new Launch(kind, java, args, Launches.env(params.getEnv(), params.isPassParentEnvs()),
                params.getWorkingDirectory());
        String what = runnerSettings instanceof DebuggingRunnerData ? "debug: " : "run: ";
        RemocalProject rp = RemocalProject.get(configuration.getProject());
        Patched patched = rp.runInSession(launch, what + configuration.getName());
        if (patched == null) {
            return;
        }
        params.setEnv(patched.launch().env());
        configuration.putUserData(SESSION, rp.takePendingSession());
    }

    @Override
    protected void attachToProcess(RunConfigurationBase<?> configuration, ProcessHandler handler, RunnerSettings runnerSettings) {
        RemocalProject.get(configuration.getProject()).endWith(handler, configuration.getUserData(SESSION));
        configuration.putUserData(SESSION, null);
    }
}
