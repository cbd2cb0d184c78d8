package dev.remocal.jetbrains.core.protocol;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The payloads of the daemon contract (protocol/daemon in Go), field for field.
 *
 * <p>Why plain classes with public fields: gson fills them by reflection and writes them back
 * with the same names, so a payload decodes and re-encodes to the same JSON (the golden test).
 * A field the Go side marks {@code omitzero} is a nullable reference here (null is not written);
 * lists the daemon always sends are initialised empty, since lists are never {@code null} on the
 * wire. Timestamps stay the RFC 3339 strings the daemon sent (see {@link Times}).
 */
public final class Protocol {
    private Protocol() {}

    // ---- lifecycle

    public static final class InitializeParams {
        public Long processId;
        public ClientInfo clientInfo;
        public JsonObject capabilities = new JsonObject();
        public List<WorkspaceFolder> workspaceFolders;
    }

    public static final class ClientInfo {
        public String name;
        public String version;

        public ClientInfo() {}

        public ClientInfo(String name, String version) {
            this.name = name;
            this.version = version;
        }
    }

    public static final class WorkspaceFolder {
        public String uri;
        public String name;

        public WorkspaceFolder() {}

        public WorkspaceFolder(String uri, String name) {
            this.uri = uri;
            this.name = name;
        }
    }

    public static final class InitializeResult {
        public Capabilities capabilities;
        public ClientInfo serverInfo;
    }

    public static final class Capabilities {
        public Experimental experimental;
    }

    public static final class Experimental {
        public ExperimentalRemocal remocal;
    }

    public static final class ExperimentalRemocal {
        public String protocolVersion;
    }

    // ---- remocal/daemon/*

    public static final class DaemonInfo {
        public String version;
        /** Absent from daemons older than 1.1. */
        public String protocolVersion;
        public int pid;
        public String socket;
        public int sessions;
        public int clients;
        public String startedAt;
    }

    public static final class DaemonShutdownParams {
        public Boolean force;

        public DaemonShutdownParams() {}

        public DaemonShutdownParams(boolean force) {
            this.force = force ? Boolean.TRUE : null;
        }
    }

    // ---- namespaces and targets

    public static final class Namespace {
        public String name;
        public String provider;
    }

    public static final class NamespacesResult {
        public List<Namespace> namespaces = new ArrayList<>();
    }

    public static final class TargetsParams {
        public List<String> kinds;
        public String namespace;
    }

    public static final class Target {
        public String ref;
        public String kind;
        public String name;
        public String namespace;
        public String provider;
        public boolean ready;
        public String status;
        public List<String> containers;
        public String description;
    }

    public static final class TargetsResult {
        public List<Target> targets = new ArrayList<>();
    }

    // ---- configuration

    public static final class ConfigParams {
        public String workspaceFolder;
        public String file;
    }

    public static final class Problem {
        public String path;
        public Integer line;
        public Integer column;
        public String message;
    }

    /** The data member of a daemon error: its reason, and for some codes what caused it. */
    public static final class ErrorData {
        public String reason;
        public List<Problem> problems;
        /** For reason "policy" (1.2): the operator policy and rule that refused. */
        public PolicyViolation policy;
    }

    public static final class PolicyViolation {
        public String kind;
        public String namespace;
        public String name;
        public String rule;
    }

    public static final class ConfigResult {
        public String file;
        public boolean valid;
        public List<Problem> problems = new ArrayList<>();
        /** The configuration with every default filled in; absent when it has problems. */
        public JsonObject config;
    }

    // ---- sessions

    /** How the program of a session is started: "auto", "env" or "wrapper". */
    public static final class Program {
        public String path;
        public List<String> args;
        public String launch;
        public Boolean transparentFirst;
    }

    public static final class SessionStartParams {
        public String target;
        public String workspaceFolder;
        public String namespace;
        public String configFile;
        public String incoming;
        public Program program;
        /** What the session is for, shown in every client's views (1.1). */
        public String label;
        /** A partial .remocal/config.json merged over the workspace's (1.1). */
        public JsonObject overrides;
        public JsonElement workDoneToken;
    }

    public static final class Session {
        public String id;
        public String target;
        public String namespace;
        public String workspaceFolder;
        public String owner;
        public String label;
        public String state;
        public String reason;
        public String startedAt;
        public String incoming;
        public String resolved;
        public String note;
        /** The operator policy that refused one of its ports, while degraded by it (1.2). */
        public PolicyViolation policy;
        /** Set once the session followed its target to a new pod: what running programs keep from the old one. */
        public StaleTarget stale;
        /** The queues the session takes a share of, as the operator granted them (1.4); null when none. */
        public List<SessionQueueSplit> queueSplits;
    }

    /**
     * A queue one of this daemon's sessions takes a share of (1.4): consumer and queue, mode
     * ("steal" or "mirror") and filter as configured, and the variables its programs get, whose
     * values name the session's own queue.
     */
    public static final class SessionQueueSplit {
        public String consumer;
        public String queue;
        public String mode;
        public QueueSplits.Filter filter;
        public Map<String, String> env = new LinkedHashMap<>();
    }

    /** A queue an operator session takes a share of, with the messages delivered to it so far (1.4). */
    public static final class RemoteQueueSplit {
        public String consumer;
        public String queue;
        public String mode;
        public QueueSplits.Filter filter;
        public String since;
        public long delivered;
    }

    /** What programs keep from the pod a session left ("env", "hostname"), and the action that refreshes it ("restart"). */
    public static final class StaleTarget {
        public String from;
        public List<String> kept = new ArrayList<>();
        public String action;
        public String message;
    }

    public static final class SessionStartResult {
        public Session session;
        public Map<String, String> env = new LinkedHashMap<>();
        public List<String> wrapper;
        public List<String> warnings = new ArrayList<>();
    }

    public static final class SessionParams {
        public String id;

        public SessionParams() {}

        public SessionParams(String id) {
            this.id = id;
        }
    }

    public static final class RemoteSessionParams {
        public String namespace;
        public String name;

        public RemoteSessionParams() {}

        public RemoteSessionParams(String namespace, String name) {
            this.namespace = namespace;
            this.name = name;
        }
    }

    public static final class SessionListResult {
        public List<Session> sessions = new ArrayList<>();
        public List<RemoteSession> remote;
    }

    public static final class HttpFilter {
        public Map<String, String> headers;
        public String path;
        public List<String> methods;
    }

    public static final class Subscription {
        public int port;
        public int localPort;
        public String mode;
        public HttpFilter filter;
        public long deliveries;
    }

    public static final class Process {
        public int pid;
        public String exe;
    }

    public static final class SessionDetail {
        public Session session;
        public List<Subscription> subscriptions = new ArrayList<>();
        public List<Process> processes = new ArrayList<>();
        public Map<String, Long> counters = new LinkedHashMap<>();
        public List<String> errors = new ArrayList<>();
    }

    // ---- notifications

    /** One of this daemon's sessions ({@link #session}) or an operator session ({@link #remote}). */
    public static final class SessionChanged {
        public Session session;
        public RemoteSession remote;
    }

    public static final class RemoteSession {
        public String name;
        public String namespace;
        public String user;
        public String client;
        public String tool;
        public String target;
        /** "Active", "Disconnected" or "Ended". */
        public String phase;
        public List<RemotePort> ports = new ArrayList<>();
        public String since;
        public String expiresAt;
        /** The queues it takes a share of (1.4); null when none. */
        public List<RemoteQueueSplit> queueSplits;
    }

    public static final class RemotePort {
        public int port;
        public String mode;
        public HttpFilter filter;
        public Boolean lock;
        public String since;
    }

    public static final class Holder {
        public String client;
        public String subscription;
        public int port;
        public String mode;
        public HttpFilter filter;
        public String user;
        public String session;
        public String since;
    }

    /**
     * A port another client holds. Conflicts seen on the cluster have an empty {@link #sessionId}
     * (the daemon writes it), name the operator session that lost the port in
     * {@link #remoteSession}, and set {@link #taken}.
     */
    public static final class Conflict {
        public String sessionId;
        public String target;
        public int port;
        public String mode;
        public Holder holder;
        public String message;
        public String remoteSession;
        public Boolean taken;

        public boolean isTaken() {
            return Boolean.TRUE.equals(taken);
        }
    }

    public static final class TargetsChanged {
        public String provider;
        public String namespace;
    }

    public static final class ConfigChanged {
        public String workspaceFolder;
        public String file;
        public boolean valid;
        public List<Problem> problems = new ArrayList<>();
    }

    // ---- LSP notifications the daemon sends besides remocal/*

    public static final class ShowMessage {
        /** 1 error, 2 warning, 3 info, 4 log. */
        public int type;
        public String message;
    }

    public static final class ProgressParams {
        public JsonElement token;
        public JsonObject value;
    }
}
