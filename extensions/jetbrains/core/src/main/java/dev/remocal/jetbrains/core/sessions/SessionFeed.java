package dev.remocal.jetbrains.core.sessions;

import com.google.gson.JsonElement;
import dev.remocal.jetbrains.core.daemon.DaemonClient;
import dev.remocal.jetbrains.core.protocol.Protocol;

import java.util.function.Consumer;

/** Keeps a SessionStore fed from a DaemonClient: notifications, and a fresh list on every connect. */
public final class SessionFeed implements DaemonClient.Listener {
    private final DaemonClient client;
    private final SessionStore store;
    private final Consumer<String> log;

    private SessionFeed(DaemonClient client, SessionStore store, Consumer<String> log) {
        this.client = client;
        this.store = store;
        this.log = log;
    }

    public static SessionFeed attach(DaemonClient client, SessionStore store, Consumer<String> log) {
        SessionFeed f = new SessionFeed(client, store, log);
        client.addListener(f);
        return f;
    }

    @Override
    public void onNotification(String method, JsonElement params) {
        store.apply(method, params);
    }

    @Override
    public void onConnected(Protocol.InitializeResult result) {
        client.listSessions().whenComplete((list, err) -> {
            if (err != null) {
                log.accept("listing sessions after connecting: " + err.getMessage());
            } else if (list != null) {
                store.reset(list);
            }
        });
    }
}
