// deploy/kafka/TopicConfigs.java - sets per-topic configuration, idempotently,
// in one IncrementalAlterConfigs request (one JVM start for every topic).
//
// Run by deploy/stack.sh with Java's single-file source launcher, against the
// jars fetched by deploy/kafka/pom.xml:
//
//   java -cp '<libs>/*' deploy/kafka/TopicConfigs.java BOOTSTRAP TOPIC=k=v,k=v ...
//
// Each argument after BOOTSTRAP names a topic and the settings it must have
// (docs/contracts.md, "Retention"). Setting a value a topic already has is a
// no-op for the broker, so running it again changes nothing. Prints "set
// <topic>" per topic. Exit 0 when every topic took its settings, 1 when one
// did not, 2 on usage error.
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.config.ConfigResource;

public class TopicConfigs {
    public static void main(String[] args) throws InterruptedException {
        if (args.length < 2) {
            System.err.println("usage: TopicConfigs BOOTSTRAP TOPIC=key=value,key=value ...");
            System.exit(2);
        }
        Map<ConfigResource, java.util.Collection<AlterConfigOp>> ops = new HashMap<>();
        for (int i = 1; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            if (eq <= 0) {
                System.err.println("not TOPIC=key=value,...: " + args[i]);
                System.exit(2);
            }
            ConfigResource topic = new ConfigResource(ConfigResource.Type.TOPIC, args[i].substring(0, eq));
            List<AlterConfigOp> set = new ArrayList<>();
            for (String kv : args[i].substring(eq + 1).split(",")) {
                int e = kv.indexOf('=');
                if (e <= 0) {
                    System.err.println("not key=value: " + kv);
                    System.exit(2);
                }
                set.add(new AlterConfigOp(new ConfigEntry(kv.substring(0, e), kv.substring(e + 1)),
                                          AlterConfigOp.OpType.SET));
            }
            ops.put(topic, set);
        }

        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(AdminClientConfig.CLIENT_ID_CONFIG, "soma-gov-stack-topic-configs");
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");

        int rc = 0;
        try (Admin admin = Admin.create(props)) {
            Map<ConfigResource, KafkaFuture<Void>> results = admin.incrementalAlterConfigs(ops).values();
            for (ConfigResource t : ops.keySet()) {
                try {
                    results.get(t).get();
                    System.out.println("set " + t.name());
                } catch (ExecutionException e) {
                    System.err.println("failed " + t.name() + ": " + e.getCause());
                    rc = 1;
                }
            }
        }
        System.exit(rc);
    }
}
