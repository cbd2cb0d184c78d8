package dev.remocal.jetbrains.core.daemon;

/** The daemon speaks a protocol version this plugin cannot use; reconnecting would not help. */
public class IncompatibleDaemonException extends DaemonException {
    private static final long serialVersionUID = 1L;

    public IncompatibleDaemonException(String message) {
        super(message, null);
    }
}
