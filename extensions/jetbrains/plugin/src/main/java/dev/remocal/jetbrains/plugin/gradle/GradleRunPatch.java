package dev.remocal.jetbrains.plugin.gradle;

import com.intellij.execution.ExecutionException;
import com.intellij.openapi.externalSystem.model.ExternalSystemException;
import com.intellij.openapi.externalSystem.model.task.ExternalSystemTaskId;
import com.intellij.openapi.externalSystem.model.task.ExternalSystemTaskNotificationListener;
import com.intellij.openapi.externalSystem.model.task.ExternalSystemTaskType;
import com.intellij.openapi.externalSystem.service.notification.ExternalSystemProgressNotificationManager;
import com.intellij.openapi.project.Project;
import dev.remocal.jetbrains.core.launch.Launch;
import dev.remocal.jetbrains.core.launch.LaunchKind;
import dev.remocal.jetbrains.core.launch.Patched;
import dev.remocal.jetbrains.plugin.RemocalProject;
import org.gradle.util.GradleVersion;
import org.jetbrains.plugins.gradle.service.task.GradleTaskManagerExtension;
import org.jetbrains.plugins.gradle.settings.GradleExecutionSettings;

import java.util.ArrayList;
import java.util.List;

/**
 * Gradle run configurations: only the core's --init-script is added to the build's arguments,
 * so the session reaches the processes of the tasks asked for and never the Gradle daemon
 * (docs/jetbrains.md, "Gradle"). The session ends with the task execution.
 */
public final class GradleRunPatch implements GradleTaskManagerExtension {
    @Override
    public void configureTasks(String projectPath, ExternalSystemTaskId id, GradleExecutionSettings settings, GradleVersion gradleVersion) {
        Project project = id.findProject();
        if (project == null || id.getType() != ExternalSystemTaskType.EXECUTE_TASK) {
            return; // sync and imports never run in a session
        }
        List<String> args = new ArrayList<>(settings.getTasks());
        args.addAll(settings.getArguments());
        Launch launch = new Launch(LaunchKind.GRADLE, "gradle", args, settings.getEnv(), projectPath);
        RemocalProject rp = RemocalProject.get(project);
        Patched patched;
        try {
            patched = rp.runInSession(launch, "gradle: " + String.join(" ", settings.getTasks()));
        } catch (ExecutionException e) {
            throw new ExternalSystemException(e.getMessage());
        }
        if (patched == null) {
            return;
        }
        // The core puts "--init-script PATH" first; the rest are the settings' own.
        settings.withArguments(patched.launch().args().subList(0, 2));
        String session = rp.takePendingSession();
        ExternalSystemProgressNotificationManager.getInstance().addNotificationListener(id, new ExternalSystemTaskNotificationListener() {
            @Override
            public void onEnd(ExternalSystemTaskId ended) {
                stop(rp, session);
                for (var f : patched.files().keySet()) {
                    try {
                        java.nio.file.Files.deleteIfExists(f);
                    } catch (java.io.IOException ignored) {
                        // the IDE's system directory; a leftover is harmless
                    }
                }
            }
        });
    }

    private static void stop(RemocalProject rp, String session) {
        try {
            rp.client().stopSession(session);
        } catch (Exception ignored) {
            // the daemon went away: the session went with it
        }
    }

    @Override
    public boolean cancelTask(ExternalSystemTaskId id, ExternalSystemTaskNotificationListener listener) {
        return false;
    }
}
