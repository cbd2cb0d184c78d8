package dev.remocal.jetbrains.core.protocol;

import java.util.List;
import java.util.Map;

/**
 * Queue splitting (protocol/queuesplit in Go), field for field: the splits a session's
 * .remocal/config.json asks for ("queueSplits") and the RemocalQueueConsumer custom resource
 * that declares a splittable consumer. Sessions carry the splits they run as
 * {@link Protocol.SessionQueueSplit} and {@link Protocol.RemoteQueueSplit}.
 */
public final class QueueSplits {
    private QueueSplits() {}

    /** One split: a consumer (and queue) of the target's namespace, a mode and a filter. */
    public static final class Split {
        public String consumer;
        public String queue;
        /** "mirror" (the default when absent) or "steal". */
        public String mode;
        public Filter filter;
    }

    /** Header name to pattern, JSON path into the body to pattern; every entry must match. */
    public static final class Filter {
        public Map<String, String> headers;
        public Map<String, String> body;
    }

    public static final class Metadata {
        public String name;
        public String namespace;
        public String resourceVersion;
    }

    public static final class RemocalQueueConsumer {
        public String apiVersion;
        public String kind;
        public Metadata metadata;
        public ConsumerSpec spec;
    }

    public static final class RemocalQueueConsumerList {
        public String apiVersion;
        public String kind;
        public Metadata metadata;
        public List<RemocalQueueConsumer> items;
    }

    public static final class ConsumerSpec {
        public Workload workload;
        public List<Queue> queues;
    }

    public static final class Workload {
        public String kind;
        public String name;
        public String container;
    }

    public static final class Queue {
        public String name;
        public Broker broker;
        public QueueEnv env;
    }

    public static final class Broker {
        /** "redis-streams" or "nats-jetstream". */
        public String kind;
        public String address;
        public SecretRef credentials;
        public String bodyField;
    }

    public static final class SecretRef {
        public String name;
        public String usernameKey;
        public String passwordKey;
    }

    /** Names of the workload's environment variables. */
    public static final class QueueEnv {
        public String stream;
        public String group;
        public String subject;
    }
}
