import { runService } from '../../../platform/service';
import { startAlerts } from './app';
import { readConfig, SERVICE } from './config';

runService(SERVICE, (log) => startAlerts(readConfig(), log));
