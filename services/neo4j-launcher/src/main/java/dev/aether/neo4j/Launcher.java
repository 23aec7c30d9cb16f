package dev.aether.neo4j;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.neo4j.configuration.Config;
import org.neo4j.configuration.GraphDatabaseInternalSettings;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.BoltConnectorInternalSettings;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.connectors.HttpsConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.graphdb.GraphDatabaseService;
import org.neo4j.io.ByteUnit;
import org.neo4j.io.fs.DefaultFileSystemAbstraction;
import org.neo4j.io.fs.FileSystemAbstraction;
import org.neo4j.kernel.impl.security.User;
import org.neo4j.logging.NullLogProvider;
import org.neo4j.memory.EmptyMemoryTracker;
import org.neo4j.server.security.SecureHasher;
import org.neo4j.server.security.SystemGraphCredential;
import org.neo4j.server.security.auth.CommunitySecurityModule;
import org.neo4j.server.security.auth.FileUserRepository;
import org.neo4j.string.UTF8;

/**
 * Runs Neo4j 5 (Community, embedded) with the Bolt connector on 127.0.0.1, for tests.
 *
 * <pre>
 * java -Xmx1g -jar neo4j-launcher.jar --home DIR --bolt-port PORT --password PASS [--pagecache-mib N]
 * </pre>
 *
 * Authentication is enabled for the built-in user {@code neo4j}. On a fresh home the password is
 * seeded before the DBMS starts, the way {@code neo4j-admin dbms set-initial-password} does it
 * ({@code data/dbms/auth.ini}, no change required), so Bolt never accepts the default password.
 * On a home whose system database already exists, the password is set with {@code ALTER USER}
 * instead. Prints {@code neo4j-launcher: bolt ready on 127.0.0.1:PORT} once usable; stops cleanly
 * on SIGTERM/SIGINT.
 */
public final class Launcher {
    private static final String HOST = "127.0.0.1";
    private static final String USER = "neo4j";
    private static final String PREFIX = "neo4j-launcher: ";
    private static final long T0 = System.nanoTime();

    private Launcher() {}

    public static void main(String[] args) throws Exception {
        String home = null;
        Integer boltPort = null;
        String password = null;
        long pagecacheMib = 256;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (i + 1 >= args.length) {
                usage("missing value for " + a);
            }
            switch (a) {
                case "--home" -> home = args[++i];
                case "--bolt-port" -> {
                    try {
                        boltPort = Integer.parseInt(args[++i]);
                    } catch (NumberFormatException e) {
                        usage("bad --bolt-port: " + args[i]);
                    }
                }
                case "--password" -> password = args[++i];
                case "--pagecache-mib" -> {
                    try {
                        pagecacheMib = Long.parseLong(args[++i]);
                    } catch (NumberFormatException e) {
                        usage("bad --pagecache-mib: " + args[i]);
                    }
                    if (pagecacheMib < 8) {
                        usage("--pagecache-mib must be at least 8");
                    }
                }
                default -> usage("unknown argument: " + a);
            }
        }
        if (home == null || boltPort == null || password == null) {
            usage("--home, --bolt-port and --password are required");
        }
        if (boltPort < 1 || boltPort > 65535) {
            usage("--bolt-port out of range: " + boltPort);
        }
        if (password.isEmpty()) {
            usage("--password must not be empty");
        }

        Path homeDir = Path.of(home).toAbsolutePath();
        log("starting Neo4j embedded, home " + homeDir + ", bolt " + HOST + ":" + boltPort);

        DatabaseManagementService dbms;
        boolean freshSystemDb;
        try {
            Config pathConfig = Config.newBuilder().set(GraphDatabaseSettings.neo4j_home, homeDir).build();
            freshSystemDb = !Files.exists(pathConfig.get(GraphDatabaseInternalSettings.databases_root_path)
                    .resolve(GraphDatabaseSettings.SYSTEM_DATABASE_NAME));
            if (freshSystemDb) {
                seedInitialPassword(pathConfig, password);
            }
            dbms = new DatabaseManagementServiceBuilder(homeDir)
                    .setConfig(GraphDatabaseSettings.default_listen_address, new SocketAddress(HOST))
                    .setConfig(GraphDatabaseSettings.default_advertised_address, new SocketAddress(HOST))
                    .setConfig(BoltConnector.enabled, true)
                    .setConfig(BoltConnector.listen_address, new SocketAddress(HOST, boltPort))
                    .setConfig(BoltConnector.advertised_address, new SocketAddress(HOST, boltPort))
                    .setConfig(BoltConnector.encryption_level, BoltConnector.EncryptionLevel.DISABLED)
                    // Bolt waits 5 s + 5 s for connections/threads on shutdown by default; 1 s is plenty here.
                    .setConfig(BoltConnectorInternalSettings.connection_shutdown_wait_time, Duration.ofSeconds(1))
                    .setConfig(BoltConnectorInternalSettings.thread_pool_shutdown_wait_time, Duration.ofSeconds(1))
                    .setConfig(HttpConnector.enabled, false)
                    .setConfig(HttpsConnector.enabled, false)
                    .setConfig(GraphDatabaseSettings.auth_enabled, true)
                    // No "anonymous usage data" reports to udc.neo4j.com: loopback traffic only.
                    .setConfig(GraphDatabaseSettings.udc_enabled, false)
                    .setConfig(GraphDatabaseInternalSettings.udc_network_enabled, false)
                    // Modest memory by default: the JVM is started with -Xmx1g. A benchmark
                    // holding a large store asks for more page cache (off heap).
                    .setConfig(GraphDatabaseSettings.pagecache_memory, ByteUnit.mebiBytes(pagecacheMib))
                    .setConfig(GraphDatabaseSettings.memory_transaction_global_max_size, ByteUnit.mebiBytes(512))
                    .setConfig(GraphDatabaseSettings.memory_transaction_max_size, ByteUnit.mebiBytes(256))
                    // Throwaway test store: no 256 MiB preallocated transaction log files.
                    .setConfig(GraphDatabaseSettings.preallocate_logical_logs, false)
                    // Nor two days of transaction logs (the default): a benchmark's load
                    // would write more logs than store. Recovery needs only the last ones.
                    .setConfig(GraphDatabaseSettings.keep_logical_logs, "false")
                    .build();
        } catch (Throwable t) {
            fail(t);
            return;
        }
        log("dbms started");

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            log("shutting down");
            try {
                dbms.shutdown();
            } catch (Throwable t) {
                log("error during shutdown: " + t);
            }
            log("stopped");
            stopped.countDown();
        }, "neo4j-launcher-shutdown"));

        try {
            if (!freshSystemDb) {
                // Existing system graph: auth.ini is ignored, so set the password through Cypher.
                // Embedded transactions run with full privileges, so this works with auth on.
                dbms.database(GraphDatabaseSettings.SYSTEM_DATABASE_NAME).executeTransactionally(
                        "ALTER USER " + USER + " SET PASSWORD $password CHANGE NOT REQUIRED",
                        Map.of("password", password));
                log("password of user " + USER + " updated");
            }
            GraphDatabaseService db = dbms.database(GraphDatabaseSettings.DEFAULT_DATABASE_NAME);
            if (!db.isAvailable(TimeUnit.SECONDS.toMillis(120))) {
                throw new IllegalStateException("database '" + db.databaseName() + "' did not become available");
            }
        } catch (Throwable t) {
            fail(t); // the shutdown hook stops the DBMS
            return;
        }

        log("bolt ready on " + HOST + ":" + boltPort);
        stopped.await();
    }

    /** What {@code neo4j-admin dbms set-initial-password PASS} does: write data/dbms/auth.ini. */
    private static void seedInitialPassword(Config config, String password) throws Exception {
        Path authFile = CommunitySecurityModule.getInitialUserRepositoryFile(config);
        try (FileSystemAbstraction fs = new DefaultFileSystemAbstraction()) {
            fs.mkdirs(authFile.getParent());
            fs.deleteFile(authFile);
            FileUserRepository users = new FileUserRepository(
                    fs, authFile, NullLogProvider.getInstance(), EmptyMemoryTracker.INSTANCE);
            users.start();
            users.create(new User(
                    USER,
                    null,
                    SystemGraphCredential.createCredentialForPassword(UTF8.encode(password), new SecureHasher()),
                    false, // password change not required
                    false)); // not suspended
            users.shutdown();
        }
    }

    private static void log(String msg) {
        System.out.printf("%s%s (%.1f s)%n", PREFIX, msg, (System.nanoTime() - T0) / 1e9);
        System.out.flush();
    }

    private static void fail(Throwable t) {
        log("startup failed: " + t);
        t.printStackTrace(System.out);
        System.out.flush();
        System.exit(1);
    }

    private static void usage(String problem) {
        System.err.println(PREFIX + problem);
        System.err.println("usage: java -jar neo4j-launcher.jar --home DIR --bolt-port PORT --password PASS [--pagecache-mib N]");
        System.exit(2);
    }
}
