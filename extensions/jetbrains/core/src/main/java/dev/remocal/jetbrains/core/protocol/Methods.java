package dev.remocal.jetbrains.core.protocol;

import java.util.List;

/** Method and notification names of the daemon contract (docs/daemon-protocol.md). */
public final class Methods {
    private Methods() {}

    public static final String INITIALIZE = "initialize";
    public static final String INITIALIZED = "initialized";
    public static final String SHUTDOWN = "shutdown";
    public static final String EXIT = "exit";
    public static final String CANCEL_REQUEST = "$/cancelRequest";
    public static final String PROGRESS = "$/progress";
    public static final String SHOW_MESSAGE = "window/showMessage";
    public static final String LOG_MESSAGE = "window/logMessage";

    public static final String DAEMON_INFO = "remocal/daemon/info";
    public static final String DAEMON_SHUTDOWN = "remocal/daemon/shutdown";
    public static final String NAMESPACES = "remocal/namespaces";
    public static final String TARGETS = "remocal/targets";
    public static final String CONFIG_RESOLVE = "remocal/config/resolve";
    public static final String CONFIG_VERIFY = "remocal/config/verify";
    public static final String SESSION_START = "remocal/session/start";
    public static final String SESSION_STOP = "remocal/session/stop";
    public static final String SESSION_LIST = "remocal/session/list";
    public static final String SESSION_DETAIL = "remocal/session/detail";
    /** Ends an operator session, anybody's, as the cluster's RBAC allows (1.1). */
    public static final String SESSION_KILL = "remocal/session/kill";

    public static final String SESSION_CHANGED = "remocal/sessionChanged";
    public static final String CONFLICT = "remocal/conflict";
    public static final String TARGETS_CHANGED = "remocal/targetsChanged";
    public static final String CONFIG_CHANGED = "remocal/configChanged";

    /** Every remocal/* request; the golden test checks each has a vector. */
    public static final List<String> REQUESTS = List.of(DAEMON_INFO, DAEMON_SHUTDOWN, NAMESPACES, TARGETS,
            CONFIG_RESOLVE, CONFIG_VERIFY, SESSION_START, SESSION_STOP, SESSION_LIST, SESSION_DETAIL, SESSION_KILL);

    /** Every remocal/* notification. */
    public static final List<String> NOTIFICATIONS = List.of(SESSION_CHANGED, CONFLICT, TARGETS_CHANGED, CONFIG_CHANGED);
}
