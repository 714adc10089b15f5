// deploy/kafka/CreateTopics.java - creates Kafka topics that do not exist yet,
// all in one CreateTopics request (one JVM start instead of one per topic).
//
// Run by deploy/stack.sh with Java's single-file source launcher, against the
// jars fetched by deploy/kafka/pom.xml:
//
//   java -cp '<libs>/*' deploy/kafka/CreateTopics.java BOOTSTRAP PARTITIONS RF TOPIC...
//
// Prints "created <topic>" or "exists <topic>" per topic. Exit 0 when every
// topic exists afterwards, 1 when one could not be created, 2 on usage error.
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.errors.TopicExistsException;

public class CreateTopics {
    public static void main(String[] args) throws InterruptedException {
        if (args.length < 4) {
            System.err.println("usage: CreateTopics BOOTSTRAP PARTITIONS REPLICATION_FACTOR TOPIC...");
            System.exit(2);
        }
        int partitions = Integer.parseInt(args[1]);
        short replication = Short.parseShort(args[2]);
        List<NewTopic> topics = new ArrayList<>();
        for (int i = 3; i < args.length; i++) {
            topics.add(new NewTopic(args[i], partitions, replication));
        }

        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(AdminClientConfig.CLIENT_ID_CONFIG, "soma-gov-stack-create-topics");
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");

        int rc = 0;
        try (Admin admin = Admin.create(props)) {
            Map<String, KafkaFuture<Void>> results = admin.createTopics(topics).values();
            for (NewTopic t : topics) {
                try {
                    results.get(t.name()).get();
                    System.out.println("created " + t.name());
                } catch (ExecutionException e) {
                    if (e.getCause() instanceof TopicExistsException) {
                        System.out.println("exists " + t.name());
                    } else {
                        System.err.println("failed " + t.name() + ": " + e.getCause());
                        rc = 1;
                    }
                }
            }
        }
        System.exit(rc);
    }
}
