export interface DnsServer {
  host: string; // IP address
  port: number;
}
