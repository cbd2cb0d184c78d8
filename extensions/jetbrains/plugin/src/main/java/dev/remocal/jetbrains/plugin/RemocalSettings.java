package dev.remocal.jetbrains.plugin;

import com.intellij.openapi.application.ApplicationManager;
import com.intellij.openapi.components.PersistentStateComponent;
import com.intellij.openapi.components.State;
import com.intellij.openapi.components.Storage;

/** Application settings (Settings | Tools | remocal): which remocal binary, and the target new projects start with. */
@State(name = "remocal", storages = @Storage("remocal.xml"))
public final class RemocalSettings implements PersistentStateComponent<RemocalSettings.Data> {
    public static final class Data {
        /** Empty: "remocal" from PATH. */
        public String binaryPath = "";
        /** A target ref ("deployment/api") preselected in projects that have chosen none. */
        public String defaultTarget = "";
        public String defaultNamespace = "";
    }

    private Data data = new Data();

    public static RemocalSettings get() {
        return ApplicationManager.getApplication().getService(RemocalSettings.class);
    }

    public String binary() {
        return data.binaryPath == null || data.binaryPath.isBlank() ? "remocal" : data.binaryPath.trim();
    }

    @Override
    public Data getState() {
        return data;
    }

    @Override
    public void loadState(Data state) {
        data = state;
    }
}
