package dev.remocal.jetbrains.core.daemon;

/** The daemon could not be started, reached or used; the message says why and what to do. */
public class DaemonException extends Exception {
    private static final long serialVersionUID = 1L;

    public DaemonException(String message, Throwable cause) {
        super(message, cause);
    }
}
